"""Batches of inbound messages stored with multi-row statements (store.inbound.batch), on
SQLite and PostgreSQL: they must end exactly as the same messages stored one by one would, in a
handful of statements whatever their number, and two writers racing with overlapping batches
must still store each message once."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import Engine, event, func, select

from connectors.base import Attachment, Identity, InboundMessage
from store import assignment
from store.inbound import record_inbound
from store.sql import attachments, contacts, conversations, identities, messages, participants
from tests.store.test_inbound import _channel, _msg


def _count_statements(engine: Engine) -> Counter[str]:
    seen: Counter[str] = Counter()

    def count(conn, cursor, statement, *_):  # type: ignore[no-untyped-def]
        seen[" ".join(statement.split()[:3]).upper()] += 1

    event.listen(engine, "before_cursor_execute", count)
    return seen


def test_a_batch_of_new_customers_takes_a_handful_of_statements(store_engine: Engine) -> None:
    channel_id = _channel(store_engine)
    batch = [_msg(f"m{n}", who=f"cust{n}", thread_key=f"from:cust{n}") for n in range(60)]
    seen = _count_statements(store_engine)
    results = record_inbound(store_engine, channel_id, batch, cursor={"n": 1})
    assert seen["INSERT INTO MESSAGES"] == 1  # not the one-by-one fallback
    # messages, identities, conversations looked up; contacts, identities, conversations and
    # messages inserted; the cursor saved: a fixed number, not one per message. (SQLite cannot
    # return new ids in the order of a multi-row insert: there, a contact is one insert each.)
    if store_engine.dialect.name == "sqlite":
        assert seen.pop("INSERT INTO CONTACTS") == 60
    assert sum(seen.values()) <= 12, seen
    assert [r.duplicate for r in results] == [False] * 60
    assert all(r.needs_routing for r in results)
    assert len({r.conversation_id for r in results}) == 60
    with store_engine.connect() as conn:
        rows = conn.execute(
            select(messages.c.external_id, messages.c.conversation_id, messages.c.sender_contact_id,
                   conversations.c.contact_id, conversations.c.thread_key, identities.c.external_id.label("who"))
            .join(conversations, conversations.c.id == messages.c.conversation_id)
            .join(identities, identities.c.contact_id == messages.c.sender_contact_id)
        ).all()
        assert conn.execute(select(func.count()).select_from(contacts)).scalar() == 60
    assert len(rows) == 60
    for row in rows:  # each message with its own sender, in that sender's own conversation
        n = row.external_id[1:]
        assert row.who == f"cust{n}" and row.thread_key == f"from:cust{n}"
        assert row.sender_contact_id == row.contact_id


def test_a_batch_ends_as_one_by_one_would(store_engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    channel_id = _channel(store_engine)
    [old] = record_inbound(store_engine, channel_id, [_msg("old", who="ann", thread_key="t-ann")])
    [gone] = record_inbound(store_engine, channel_id, [_msg("gone", who="bob", thread_key="t-bob")])
    assignment.resolve(store_engine, gone.conversation_id, by=None)  # type: ignore[arg-type]
    known = record_inbound(store_engine, channel_id, [_msg("known", who="cat", ident={"email": "Cat@Example.com"},
                                                           thread_key="t-cat-1")])
    batch = [
        _msg("old", who="ann", thread_key="t-ann"),  # stored before: a duplicate
        _msg("a2", who="ann", thread_key="t-ann"),  # joins ann's open conversation
        _msg("b2", who="bob", thread_key="t-bob"),  # reopens bob's resolved one
        _msg("n1", who="new", thread_key="t-new", subject="First", language="pl"),
        _msg("n2", who="new", thread_key="t-new"),  # the same new conversation
        _msg("n1", who="new", thread_key="t-new"),  # a second copy within the batch
        _msg("c2", who="cat-on-form", ident={"email": "cat@example.com"}, thread_key="t-cat-2"),  # linked to cat
        _msg("d1", who="dan-1", ident={"phone": "+48500100200"}, thread_key="t-dan-1"),
        _msg("d2", who="dan-2", ident={"phone": "+48500100200"}, thread_key="t-dan-2"),  # dan's new contact
        _msg("r1", who="eve", thread_key="t-ann", thread_refs=("old",)),  # someone else on ann's thread
        _msg("f1", who="fay", thread_key="t-fay",
             attachments=(Attachment(filename="a.txt", content_type="text/plain", data=b"hi"),)),
    ]
    results = record_inbound(store_engine, channel_id, batch)
    assert "one by one" not in caplog.text  # stored as a batch, not by the fallback
    by_id = dict(zip([m.external_id for m in batch], results, strict=False))
    assert results[0].duplicate and results[0].message_id == old.message_id
    assert results[5].duplicate and results[5].message_id == results[3].message_id
    assert sum(1 for r in results if r.duplicate) == 2
    assert by_id["a2"].conversation_id == old.conversation_id
    assert by_id["b2"].conversation_id == gone.conversation_id and by_id["b2"].needs_routing
    assert by_id["n2"].conversation_id == by_id["n1"].conversation_id
    assert by_id["r1"].conversation_id == old.conversation_id
    with store_engine.connect() as conn:
        conv = {r.id: r for r in conn.execute(select(conversations)).all()}
        sender = dict(conn.execute(select(messages.c.external_id, messages.c.sender_contact_id)).all())
        files = conn.execute(select(attachments.c.message_id, attachments.c.filename, attachments.c.data)).all()
        people = conn.execute(select(participants.c.conversation_id, participants.c.contact_id)).all()
        assert conn.execute(select(func.count()).select_from(messages)).scalar() == 3 + 9
    assert conv[gone.conversation_id].status == "open" and conv[gone.conversation_id].resolved_at is None
    new = conv[by_id["n1"].conversation_id]
    assert (new.subject, new.language, new.thread_key, new.open_key) == ("First", "pl", "t-new", "t-new")
    assert sender["c2"] == sender["known"]  # one person on two identities: one contact
    assert sender["d1"] == sender["d2"] != sender["c2"]
    assert files == [(by_id["f1"].message_id, "a.txt", b"hi")]
    assert (old.conversation_id, sender["r1"]) in [tuple(p) for p in people]
    assert known[0].conversation_id not in {r.conversation_id for r in results}


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_racing_batches_store_each_message_once(store_engine: Engine) -> None:
    """Four writers with overlapping batches of the same 200 messages (50 customers, four
    messages each): every message once, one conversation a customer, every sender one contact."""
    channel_id = _channel(store_engine)
    every = [_msg(f"m{n}", who=f"c{n % 50}", thread_key=f"from:c{n % 50}") for n in range(200)]
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def write(offset: int) -> None:
        try:
            start.wait()
            for first in range(0, 200, 40):
                chunk = every[(first + offset * 10) % 200:][:40]
                record_inbound(store_engine, channel_id, chunk)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    missed = record_inbound(store_engine, channel_id, every)  # whatever no writer covered
    assert all(r.message_id is not None for r in missed)
    with store_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(messages)).scalar() == 200
        assert conn.execute(select(func.count()).select_from(conversations)).scalar() == 50
        assert conn.execute(select(func.count()).select_from(identities)).scalar() == 50
        assert conn.execute(select(func.count()).select_from(contacts)).scalar() == 50
        per_conv = conn.execute(
            select(messages.c.conversation_id, func.count(func.distinct(messages.c.sender_contact_id)))
            .group_by(messages.c.conversation_id)
        ).all()
    assert len(per_conv) == 50 and all(n == 1 for _, n in per_conv)


def test_identity_in_a_batch_keeps_its_details(store_engine: Engine) -> None:
    channel_id = _channel(store_engine)
    record_inbound(store_engine, channel_id, [
        InboundMessage(external_id="x1", sender=Identity(external_id="u1", name="Zoë Ñúñez", email="z@example.com"),
                       text="hola", thread_key="t1"),
        InboundMessage(external_id="x2", sender=Identity(external_id="u2", name="Ola", phone="+48111222333"),
                       text="cześć", thread_key="t2"),
    ])
    with store_engine.connect() as conn:
        rows = {r.name: r for r in conn.execute(select(contacts)).all()}
    assert rows["Zoë Ñúñez"].email == "z@example.com" and rows["Ola"].phone == "+48111222333"


def test_a_reply_joins_its_parent_stored_in_the_same_batch(store_engine: Engine,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """A mailbox backlog holds a mail and the answers to it: one batch, parents not yet stored
    when the replies look for them."""
    channel_id = _channel(store_engine)
    batch = [
        _msg("<p1@mail>", who="ann@example.com"),  # a new mail: no thread key, a conversation of its own
        _msg("<p2@shop>", who="bob", thread_key="form:77"),  # a new thread, created with the batch
        _msg("<r1@mail>", who="ann@example.com", thread_refs=("<p1@mail>",)),
        _msg("<r2@mail>", who="cc@example.com", thread_refs=("<x@old>", "<p1@mail>", "<r1@mail>")),  # Cc'd
        _msg("<r3@shop>", who="bob", thread_refs=("<p2@shop>",)),
        _msg("<p3@mail>", who="dan@example.com"),  # unrelated
    ]
    results = record_inbound(store_engine, channel_id, batch)
    assert "one by one" not in caplog.text
    conv = [r.conversation_id for r in results]
    assert conv[0] == conv[2] == conv[3]
    assert conv[1] == conv[4]
    assert len({conv[0], conv[1], conv[5]}) == 3
    with store_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(conversations)).scalar() == 3
        people = conn.execute(select(participants.c.conversation_id)).scalars().all()
    assert people == [conv[0]]  # the Cc'd colleague joined ann's conversation


def test_a_backlog_of_new_mails_takes_a_handful_of_statements(store_engine: Engine) -> None:
    """Mail has no thread key: each new mail opens a conversation of its own, all of them
    created with one statement; a reply to a stored mail joins its conversation."""
    channel_id = _channel(store_engine, "email")
    [first] = record_inbound(store_engine, channel_id, [_msg("<old@x>", who="ann@example.com")])
    batch = [_msg(f"<m{n}@x>", who=f"c{n}@example.com", ident={"email": f"c{n}@example.com"}, subject=f"Order {n}")
             for n in range(60)]
    batch.append(_msg("<re-old@x>", who="ann@example.com", thread_refs=("<gone@x>", "<old@x>")))
    seen = _count_statements(store_engine)
    results = record_inbound(store_engine, channel_id, batch, cursor={"uid": 61})
    if store_engine.dialect.name == "sqlite":  # one insert a row where ids must come back in order
        assert seen.pop("INSERT INTO CONTACTS") == 60 and seen.pop("INSERT INTO CONVERSATIONS") == 60
    assert sum(seen.values()) <= 15, seen
    assert results[-1].conversation_id == first.conversation_id
    assert len({r.conversation_id for r in results[:60]}) == 60
    with store_engine.connect() as conn:
        rows = conn.execute(select(messages.c.external_id, conversations.c.subject, conversations.c.contact_id,
                                   messages.c.sender_contact_id)
                            .join(conversations, conversations.c.id == messages.c.conversation_id)).all()
    for row in rows:
        if row.external_id.startswith("<m"):
            assert row.subject == f"Order {row.external_id[2:-3]}" and row.contact_id == row.sender_contact_id
