"""The inbox's reads on SQLite and PostgreSQL: unread counts against read markers, previews, the
reply window, the views' counts checked against the visibility rule in Python, read markers that
never move back and whose event only their agent reads, and the list's queries not growing with
the page (no query a conversation)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, update

from connectors import REGISTRY
from router.access import Viewer, may_see
from store import agents as agent_store
from store import conversations as store_conversations
from store import events, inbox
from store.models import utcnow
from store.sql import channels, conversations, messages
from tests.support import channel_and_contact


def _agent(engine: Engine, name: str, **kw: Any) -> int:
    return agent_store.create_agent(engine, name=name, email=f"{name.lower()}@shop.test", **kw)[0]


def _conversation(engine: Engine, channel_id: int, contact_id: int, **kw: Any) -> int:
    now = utcnow()
    with engine.begin() as conn:
        return conn.execute(conversations.insert().values(
            channel_id=channel_id, contact_id=contact_id, status=kw.pop("status", "open"), priority=0,
            needs_routing=False, route_attempts=0, created_at=now, updated_at=now, **kw)
            .returning(conversations.c.id)).scalar_one()


def _message(engine: Engine, conversation_id: int, channel_id: int, direction: str = "in", text: str = "hi",
             *, private: bool = False, at: Any = None) -> int:
    with engine.begin() as conn:
        return conn.execute(messages.insert().values(
            conversation_id=conversation_id, channel_id=channel_id, direction=direction, text=text,
            private=private, automatic=False, status="received" if direction == "in" else "sent", attempts=0,
            created_at=at or utcnow()).returning(messages.c.id)).scalar_one()


def _rows(engine: Engine, agent_id: int, *, admin: bool = False) -> list[Any]:
    rows, _ = store_conversations.list_visible(engine, agent_id, admin=admin, filters=store_conversations.Filters(),
                                               limit=200)
    return rows


def test_unread_preview_and_markers(store_engine: Engine) -> None:
    engine = store_engine
    with engine.begin() as conn:
        channel, contact = channel_and_contact(conn, utcnow())
    ana, joan = _agent(engine, "Ana"), _agent(engine, "Joan")
    conv = _conversation(engine, channel, contact)
    _message(engine, conv, channel, text="first")
    _message(engine, conv, channel, text="a note", direction="out", private=True)
    _message(engine, conv, channel, text="x" * 300)

    [row] = _rows(engine, ana)
    extra = inbox.extras(engine, ana, [row])[conv]
    assert extra.unread == 2  # the private note is no customer message
    assert extra.preview == "x" * inbox.PREVIEW
    assert extra.reply_window_ends_at is None  # the API channel has no window

    after = events.head(engine)
    newest = inbox.mark_read(engine, ana, conv)
    assert inbox.extras(engine, ana, [row])[conv].unread == 0
    assert inbox.extras(engine, joan, [row])[conv].unread == 2  # markers are per agent
    _message(engine, conv, channel, text="more")
    assert inbox.extras(engine, ana, [row])[conv].unread == 1

    with engine.begin() as conn:  # a marker never moves back (an older tab's late call)
        conn.execute(update(inbox.reads).where(inbox.r.agent_id == ana).values(last_read_message_id=newest + 1))
    assert inbox.mark_read(engine, ana, conv) == newest + 1
    with engine.connect() as conn:
        assert conn.execute(select(inbox.r.last_read_message_id).where(inbox.r.agent_id == ana)).scalar() == newest + 1

    # The marker's event reaches its agent alone, not a colleague nor an admin who sees the conversation.
    admin = _agent(engine, "Boss", role="admin")
    mine = [r.type for r in events.Reader(engine, after, agent_id=ana, admin=False).read()]
    theirs = [r.type for r in events.Reader(engine, after, agent_id=joan, admin=False).read()]
    boss = [r.type for r in events.Reader(engine, after, agent_id=admin, admin=True).read()]
    assert mine.count("conversation.read") == 2 and "conversation.read" not in theirs + boss


def test_a_conversation_without_messages_has_nothing_to_read(store_engine: Engine) -> None:
    engine = store_engine
    with engine.begin() as conn:
        channel, contact = channel_and_contact(conn, utcnow())
    ana = _agent(engine, "Ana")
    conv = _conversation(engine, channel, contact)
    assert inbox.mark_read(engine, ana, conv) is None
    assert inbox.extras(engine, ana, _rows(engine, ana))[conv] == inbox.Extra()


def test_reply_window_from_the_last_customer_message(store_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(REGISTRY, "windowed", "tests.web.windowed:WindowedConnector")
    engine = store_engine
    with engine.begin() as conn:
        channel, contact = channel_and_contact(conn, utcnow())
        conn.execute(update(channels).where(channels.c.id == channel).values(kind="windowed"))
    ana = _agent(engine, "Ana")
    conv = _conversation(engine, channel, contact)
    at = utcnow() - timedelta(seconds=20)
    _message(engine, conv, channel, at=at)
    _message(engine, conv, channel, direction="out", at=utcnow())  # our reply does not move the window
    assert inbox.extras(engine, ana, _rows(engine, ana))[conv].reply_window_ends_at == at + timedelta(minutes=1)


def test_counts_follow_the_visibility_rule(store_engine: Engine) -> None:
    engine = store_engine
    with engine.begin() as conn:
        channel, contact = channel_and_contact(conn, utcnow())
    sales = agent_store.create_team(engine, "Sales")
    other = agent_store.create_team(engine, "Other")
    ana = _agent(engine, "Ana", team_ids=[sales])
    joan = _agent(engine, "Joan")
    boss = _agent(engine, "Boss", role="admin")
    made = []
    for status in ("open", "pending", "snoozed", "resolved"):
        for assignee in (None, ana, joan):
            for team in (None, sales, other):
                conv = _conversation(engine, channel, contact, status=status, assignee_id=assignee, team_id=team)
                made.append(conv)
                if (assignee, team) != (None, None):
                    _message(engine, conv, channel)
    inbox.mark_read(engine, ana, made[1])

    with engine.connect() as conn:
        rows = conn.execute(select(conversations)).all()
    for agent_id, admin, teams in ((ana, False, {sales}), (joan, False, set()), (boss, True, set())):
        viewer = Viewer(agent_id, admin, frozenset(teams))
        seen = [r for r in rows if may_see(viewer, r) and r.status in ("open", "pending")]
        unread = inbox.extras(engine, agent_id, [type("R", (), {"id": r.id, "channel_kind": "api"})() for r in seen])
        expected = {"mine": sum(r.assignee_id == agent_id for r in seen),
                    "unassigned": sum(r.status == "open" and r.assignee_id is None for r in seen),
                    "all": len(seen), "unread": sum(unread[r.id].unread > 0 for r in seen)}
        assert inbox.counts(engine, agent_id, admin=admin) == expected
        assert expected["all"] > 0


def test_views_and_team_filter(store_engine: Engine) -> None:
    engine = store_engine
    with engine.begin() as conn:
        channel, contact = channel_and_contact(conn, utcnow())
    sales = agent_store.create_team(engine, "Sales")
    ana = _agent(engine, "Ana", team_ids=[sales])
    theirs = _conversation(engine, channel, contact, assignee_id=ana)
    queue = _conversation(engine, channel, contact)
    team = _conversation(engine, channel, contact, team_id=sales)
    _conversation(engine, channel, contact, status="pending")  # unassigned, but not open

    def view(name: str, **kw: Any) -> list[int]:
        filters = store_conversations.Filters(view=name, **kw)
        return [r.id for r in store_conversations.list_visible(engine, ana, admin=False, filters=filters,
                                                               limit=50)[0]]

    assert view("mine") == [theirs]
    assert view("unassigned") == [team, queue]
    assert view("all", team_id=sales) == [team]
    assert len(view("all")) == 4


def test_the_page_costs_the_same_queries_whatever_its_size(store_engine: Engine) -> None:
    engine = store_engine
    with engine.begin() as conn:
        channel, contact = channel_and_contact(conn, utcnow())
    ana = _agent(engine, "Ana")
    for _ in range(30):
        conv = _conversation(engine, channel, contact)
        _message(engine, conv, channel)
        _message(engine, conv, channel, direction="out")
    statements: list[str] = []

    def seen(*args: Any) -> None:
        if args[2].lstrip().upper().startswith("SELECT"):  # not SQLite's BEGIN
            statements.append(args[2])

    def page(limit: int) -> int:
        statements.clear()
        event.listen(engine, "before_cursor_execute", seen)
        try:
            rows, _ = store_conversations.list_visible(engine, ana, admin=False, limit=limit,
                                                       filters=store_conversations.Filters(),
                                                       columns=inbox.columns(ana))
            shown = {row.id: inbox.extra(row) for row in rows}
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        assert shown == inbox.extras(engine, ana, rows)  # the same as read apart
        assert all(x.unread == 1 and x.preview == "hi" for x in shown.values())
        return len(statements)

    assert page(2) == page(30) == 1  # the page and its unread counts, previews and windows: one query


def test_reply_files_are_stored_with_it_and_handed_to_the_connector(store_engine: Engine,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors.base import Attachment
    from store import outbound

    monkeypatch.setitem(REGISTRY, "filed", "tests.web.filed:FiledConnector")
    engine = store_engine
    with engine.begin() as conn:
        channel, contact = channel_and_contact(conn, utcnow())
    conv = _conversation(engine, channel, contact)
    _message(engine, conv, channel)
    files = [Attachment("a.pdf", "application/pdf", b"%PDF"), Attachment("b.txt", "text/plain", b"hi")]
    with pytest.raises(outbound.AttachmentsRefused):  # the API channel sends no files
        outbound.create_reply(engine, conv, agent_id=None, text="x", files=files)
    note = outbound.create_reply(engine, conv, agent_id=None, text="", private=True, files=files)
    with engine.begin() as conn:
        conn.execute(update(channels).where(channels.c.id == channel).values(kind="filed"))
    reply = outbound.create_reply(engine, conv, agent_id=None, text="here", files=files)
    claim = outbound.claim(engine, reply)
    assert claim is not None
    assert tuple(dataclasses.replace(a, url=None) for a in claim.message.attachments) == tuple(files)
    # Each with its signed link (store.media), for providers that fetch the files themselves.
    from store import media

    for file in claim.message.attachments:
        path, _, query = (file.url or "").partition("?")
        found = dict(part.split("=", 1) for part in query.split("&"))
        assert media.verify(int(path.rsplit("/", 1)[1]), found["expires"], found["signature"]) is None
    assert outbound.claim(engine, note) is None  # a note is never sent
