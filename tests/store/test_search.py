"""Search (store.search) on both databases: words, phrases and prefixes in messages and private
notes, contacts by name, email and phone, accents, hostile input, and only what the agent may see."""

from __future__ import annotations

import itertools
import random
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine, delete, update

from router.access import Viewer, may_see
from store import agents as agent_store
from store import search
from store.models import utcnow
from store.sql import channels, contacts, conversations, messages

_ids = itertools.count(1)


class Shop:
    """A store with a channel, written straight into the tables."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        now = utcnow()
        with engine.begin() as conn:
            self.channel_id = conn.execute(channels.insert().values(
                kind="api", name="Shop", config={}, enabled=True, status="ok", error_count=0, created_at=now,
                updated_at=now).returning(channels.c.id)).scalar_one()

    def contact(self, name: str | None = None, email: str | None = None, phone: str | None = None) -> int:
        with self.engine.begin() as conn:
            return conn.execute(contacts.insert().values(name=name, email=email, phone=phone, created_at=utcnow())
                                .returning(contacts.c.id)).scalar_one()

    def conversation(self, contact_id: int | None = None, *, assignee: int | None = None,
                     team: int | None = None) -> int:
        contact_id = contact_id or self.contact("Someone")
        now = utcnow()
        with self.engine.begin() as conn:
            return conn.execute(conversations.insert().values(
                channel_id=self.channel_id, contact_id=contact_id, status="open", assignee_id=assignee, team_id=team,
                priority=0, needs_routing=False, route_attempts=0, created_at=now, updated_at=now)
                .returning(conversations.c.id)).scalar_one()

    def message(self, conversation_id: int, text: str, *, private: bool = False) -> int:
        with self.engine.begin() as conn:
            return conn.execute(messages.insert().values(
                conversation_id=conversation_id, channel_id=self.channel_id, direction="out" if private else "in",
                text=text, private=private, automatic=False, external_id=f"x-{next(_ids)}",
                status="received", attempts=0, created_at=utcnow()).returning(messages.c.id)).scalar_one()


def found(engine: Engine, q: str, agent_id: int = 0, admin: bool = True, limit: int = 100) -> list[int]:
    hits, _ = search.find_messages(engine, agent_id, admin=admin, terms=search.parse(q), limit=limit)
    return [h.id for h in hits]


def people(engine: Engine, q: str, agent_id: int = 0, admin: bool = True) -> list[tuple[int, int]]:
    hits, _ = search.find_contacts(engine, agent_id, admin=admin, terms=search.parse(q), limit=100)
    return [(h.id, h.conversation_id) for h in hits]


def test_words_phrases_and_the_prefix_of_the_last_word(store_engine: Engine) -> None:
    shop = Shop(store_engine)
    conv = shop.conversation()
    order = shop.message(conv, "Where is my order #40021? It was due on Monday.")
    parcel = shop.message(conv, "The parcel arrived damaged, the order is broken")
    note = shop.message(conv, "Customer is angry about the damaged parcel", private=True)
    assert found(store_engine, "order") == [parcel, order]  # newest first
    assert found(store_engine, "ORDER damaged ") == [parcel]  # every word, any case
    assert found(store_engine, "40021") == [order]
    assert found(store_engine, "parcel") == [note, parcel]  # private notes too
    assert found(store_engine, "damag") == [note, parcel]  # typing: the last word is a prefix
    assert found(store_engine, "damag ") == []  # ... until followed by a space
    assert found(store_engine, "ord damaged") == []  # only the last word
    assert found(store_engine, '"parcel arrived"') == [parcel]
    assert found(store_engine, '"arrived parcel"') == []  # a phrase keeps its order
    assert found(store_engine, "monday sunday") == []


def test_accents_and_other_alphabets(store_engine: Engine) -> None:
    shop = Shop(store_engine)
    conv = shop.conversation()
    fr = shop.message(conv, "Ça ne marche pas, le café est arrivé froid")
    pl = shop.message(conv, "Paczka do Łodzi nie dotarła, proszę o zwrot")
    ca = shop.message(conv, "La comanda és a Barcelona, gràcies")
    el = shop.message(conv, "Η παραγγελία μου δεν έφτασε")
    assert found(store_engine, "café") == [fr]
    assert found(store_engine, "ça") == found(store_engine, "ÇA") == [fr]  # the case of any alphabet
    assert found(store_engine, "łodzi") == found(store_engine, "ŁODZI") == [pl]
    assert found(store_engine, "dotarł") == [pl]  # a prefix ending in a non-ASCII letter
    assert found(store_engine, "gràcies") == [ca]
    assert found(store_engine, "παραγγελία") == [el]
    assert found(store_engine, "cafe ") == []  # no folding: an accent is part of the word (as PostgreSQL's)


def test_contacts_by_name_email_and_phone(store_engine: Engine) -> None:
    shop = Shop(store_engine)
    marta = shop.contact("Marta Núñez", "marta.nunez@example.com", "+34 600 123 456")
    older = shop.conversation(marta)
    newest = shop.conversation(marta)
    jan = shop.contact("Jan Kowalski", "jan@przyklad.pl", None)
    jan_conv = shop.conversation(jan)
    nobody = shop.contact("Marta Without Conversation", "nobody@example.com")
    assert nobody and older < newest
    assert people(store_engine, "marta") == [(marta, newest)]  # with their newest conversation
    assert people(store_engine, "núñez") == [(marta, newest)]
    assert people(store_engine, "marta.nunez@example.com") == [(marta, newest)]
    assert people(store_engine, "marta.nu") == [(marta, newest)]  # the email as it is typed
    assert people(store_engine, "example") == [(marta, newest)]
    assert people(store_engine, "+34 600 123 456") == [(marta, newest)]
    assert people(store_engine, "600 123") == [(marta, newest)]
    assert people(store_engine, "34600123") == [(marta, newest)]  # the digits, as typed without spaces
    assert people(store_engine, "kowal") == [(jan, jan_conv)]
    assert people(store_engine, "przyklad") == [(jan, jan_conv)]
    assert people(store_engine, "jan marta") == []


def test_the_index_follows_updates_and_deletes(store_engine: Engine) -> None:
    shop = Shop(store_engine)
    conv = shop.conversation()
    kept = shop.message(conv, "first draft about invoices")
    gone = shop.message(conv, "a message about invoices")
    jo = shop.contact("Jo Old", "jo@shop.example", "+34 1")
    shop.conversation(jo)
    with store_engine.begin() as conn:
        conn.execute(update(messages).where(messages.c.id == kept).values(text="rewritten about refunds"))
        conn.execute(delete(messages).where(messages.c.id == gone))
        conn.execute(update(contacts).where(contacts.c.id == jo).values(name="Jo New", phone="+48 500"))
    assert found(store_engine, "invoices") == []
    assert found(store_engine, "refunds") == [kept]
    assert people(store_engine, "old") == people(store_engine, "341") == []
    assert [c for c, _ in people(store_engine, "jo new")] == [c for c, _ in people(store_engine, "48500")] == [jo]


HOSTILE = ['"', '""', "'", "''", ":", "a:b", "&", "|", "!", "!!x", "a & | b", "(", ")", "())(", "*", "a*", "-x",
           "NOT", "AND OR NEAR", "NEAR(a b)", "col:word", "text:foo", "\\", "\\'", "x\x00y", "\x00", "'; DROP TABLE x",
           "a' | 'b", "a <-> b", ":*", "'x':*", "{text}: x", "^x", "x + y", "🙂", "é" * 50, "word " * 40,
           "x" * 200, "''''''", '"unclosed phrase', "%_%", "\t\n"]


def test_hostile_queries_find_text_or_nothing_and_never_raise(store_engine: Engine) -> None:
    shop = Shop(store_engine)
    conv = shop.conversation()
    shop.contact("Col Word", "col@word.example")
    text = shop.message(conv, "a text about NEAR and NOT, x and y; col word; b")
    for q in HOSTILE:
        assert set(found(store_engine, q)) <= {text}, q
        people(store_engine, q)
    assert found(store_engine, "col:word") == [text]  # punctuation is a separator, not syntax
    assert found(store_engine, "NOT") == [text]  # an operator's name is a word
    assert found(store_engine, "\x00") == [] and search.parse("!!& | :") == []


def test_an_agent_finds_only_what_they_may_see(store_engine: Engine) -> None:
    """On a random world of teams, assignees and conversations: each agent finds exactly the
    messages and contacts of the conversations ``router.access.may_see`` allows."""
    rnd = random.Random(7)
    shop = Shop(store_engine)
    team_ids = [agent_store.create_team(store_engine, f"team {n}") for n in range(3)]
    viewers = []
    for n in range(8):
        role = "admin" if n == 7 else "agent"
        member = rnd.sample(team_ids, rnd.choice([0, 1, 1, 2]))
        agent_id, _ = agent_store.create_agent(store_engine, name=f"A{n}", email=f"a{n}@shop.test", role=role,
                                               team_ids=member)
        viewers.append(Viewer.of(agent_id, role, member))
    convs: list[Any] = []
    for n in range(40):
        assignee, team = rnd.choice([None, None, *(v.id for v in viewers)]), rnd.choice([None, None, *team_ids])
        contact = shop.contact(f"Zebulon {n}")
        conv = shop.conversation(contact, assignee=assignee, team=team)
        convs.append(SimpleNamespace(id=conv, assignee_id=assignee, team_id=team, contact=contact,
                                     message=shop.message(conv, f"zanzibar shipment {n}", private=n % 3 == 0)))
    mixed = False
    for viewer in viewers:
        seen = [x for x in convs if may_see(viewer, x)]
        mixed |= 0 < len(seen) < len(convs)
        assert found(store_engine, "zanzibar", viewer.id, viewer.admin) == sorted((x.message for x in seen),
                                                                                   reverse=True)
        assert people(store_engine, "zebulon", viewer.id, viewer.admin) == sorted(
            ((x.contact, x.id) for x in seen), reverse=True)
    assert mixed


@pytest.mark.parametrize("backend", ["postgres"])
def test_postgres_uses_the_gin_indexes(store_engine: Engine, backend: str) -> None:
    from sqlalchemy import text

    with store_engine.begin() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        for kind in ("messages", "contacts"):
            where = search._matching(store_engine, kind, search.parse("marta"))
            table = messages if kind == "messages" else contacts
            query = table.select().where(where).compile(store_engine, compile_kwargs={"literal_binds": True})
            plan = "\n".join(conn.execute(text(f"EXPLAIN {query}")).scalars())
            assert f"ix_{kind}_search" in plan, plan


def test_snippets_show_the_match() -> None:
    words = "lorem ipsum dolor sit amet " * 20
    shown = search.snippet(words + "the REFUND was never paid " + words, search.parse("refund"))
    assert "REFUND was never paid" in shown and shown.startswith("…") and shown.endswith("…")
    assert len(shown) <= search._SNIPPET + 2 and "\n" not in shown
    assert search.snippet("short\ntext", search.parse("nothing")) == "short text"


@pytest.mark.parametrize("every", [4, 16])  # 16: one page needs several chunks
def test_pages_through_many_contacts_an_agent_sees_few_of(store_engine: Engine, every: int) -> None:
    """Contacts are read a chunk at a time: pages stay whole and in order across chunks when the
    agent sees only some of the matches; messages page by id."""
    shop = Shop(store_engine)
    team = agent_store.create_team(store_engine, "Returns")
    agent_id, _ = agent_store.create_agent(store_engine, name="Ana", email="ana@shop.test", team_ids=[team])
    other = agent_store.create_team(store_engine, "Sales")
    theirs = []
    for n in range(160):
        contact = shop.contact(f"Quixote {n}")
        conv = shop.conversation(contact, team=team if n % every == 0 else other)
        shop.message(conv, f"windmill {n}")
        if n % every == 0:
            theirs.append(contact)
    for find, expected in ((search.find_contacts, sorted(theirs, reverse=True)), (search.find_messages, None)):
        pages, before, more = [], None, True
        while more:
            hits, more = find(store_engine, agent_id, admin=False, terms=search.parse(
                "quixote" if find is search.find_contacts else "windmill"), limit=7, before_id=before)
            assert hits and (len(hits) == 7 or not more)
            pages += [h.id for h in hits]
            before = hits[-1].id
        assert pages == sorted(pages, reverse=True) and len(pages) == len(set(pages)) == 160 // every
        if expected is not None:
            assert pages == expected


@pytest.mark.parametrize("recent", [1, 5, 1000])
def test_messages_newest_first_across_the_recent_walk_and_the_index(
        store_engine: Engine, monkeypatch: pytest.MonkeyPatch, recent: int) -> None:
    """The newest ``RECENT_IDS`` messages are walked, older ones found by the word index: pages
    stay whole, newest first, with nothing twice or missing, wherever the boundary falls (1: all but
    the newest by the index; 1000: all walked), and for words too rare to fill a page."""
    monkeypatch.setattr(search, "RECENT_IDS", recent)
    shop = Shop(store_engine)
    conv = shop.conversation()
    dense, rare = [], []
    for n in range(60):
        words = "parcel" if n % 2 else "invoice"
        if n in (4, 41):
            words += " zanzibar"
        made = shop.message(conv, f"{words} {n}")
        (dense if n % 2 else []).append(made)
        if n in (4, 41):
            rare.append(made)
    assert found(store_engine, "zanzibar") == sorted(rare, reverse=True)
    assert found(store_engine, "zanzibar parcel") == [rare[1]]  # 41 is odd: parcel; 4 is not
    pages, before, more = [], None, True
    while more:
        hits, more = search.find_messages(store_engine, 0, admin=True, terms=search.parse("parcel"), limit=7,
                                          before_id=before)
        pages += [h.id for h in hits]
        before = hits[-1].id
    assert pages == sorted(dense, reverse=True)
