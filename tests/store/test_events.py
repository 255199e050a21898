"""The event stream's record, on SQLite and PostgreSQL: every change writes its event in its own
transaction (a rolled-back change leaves none), ids follow commit order, readers get what they may
see, pruning leaves a horizon and never brings an old id back."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from connectors.base import Identity, InboundMessage, SendResult, StatusUpdate
from store import agents as agent_store
from store import assignment, events, outbound, wakeups
from store import conversations as store_conversations
from store.dialect import is_postgres
from store.inbound import record_inbound
from store.inbound.batch import record_batch
from store.models import utcnow
from store.sql import conversations
from tests.support import channel_and_contact

E = events.events.c


def _all(engine: Engine, after: int = 0) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(events.events).where(E.id > after).order_by(E.id)).all())


def _kinds(engine: Engine, after: int = 0) -> list[tuple[str, int | None, dict[str, Any]]]:
    return [(row.type, row.conversation_id, row.data) for row in _all(engine, after)]


def _msg(external_id: str, who: str = "cust", **kw: Any) -> InboundMessage:
    return InboundMessage(external_id=external_id, sender=Identity(external_id=who), text="hello", **kw)


def _channel(engine: Engine) -> int:
    with engine.begin() as conn:
        return channel_and_contact(conn, utcnow())[0]


def _agent(engine: Engine, name: str, **kw: Any) -> int:
    return agent_store.create_agent(engine, name=name, email=f"{name.lower()}@shop.test", **kw)[0]


def test_inbound_writes_its_events_in_its_transaction(store_engine: Engine) -> None:
    engine = store_engine
    channel = _channel(engine)
    first, second = record_inbound(engine, channel, [_msg("m1", thread_key="t1"), _msg("m2", thread_key="t2")])
    assert _kinds(engine) == [
        ("conversation.created", first.conversation_id, {}),
        ("conversation.created", second.conversation_id, {}),
        ("message.created", first.conversation_id, {"message_id": first.message_id, "direction": "in"}),
        ("message.created", second.conversation_id, {"message_id": second.message_id, "direction": "in"}),
    ]
    seen = events.head(engine)
    [again, dup] = record_inbound(engine, channel, [_msg("m3", thread_key="t1"), _msg("m1", thread_key="t1")])
    assert dup.duplicate
    assert _kinds(engine, seen) == [
        ("conversation.updated", first.conversation_id, {"status": "open"}),
        ("message.created", first.conversation_id, {"message_id": again.message_id, "direction": "in"}),
    ]
    # A batch whose transaction rolls back leaves neither its messages nor its events.
    seen = events.head(engine)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        record_batch(conn, channel, [_msg("m4", thread_key="t4")])
        raise RuntimeError("the caller fails after storing")
    assert _all(engine, seen) == []
    assert record_inbound(engine, channel, [_msg("m4", thread_key="t4")])[0].duplicate is False


def test_replies_statuses_and_receipts_write_events(store_engine: Engine) -> None:
    engine = store_engine
    channel = _channel(engine)
    [rec] = record_inbound(engine, channel, [_msg("m1", thread_key="t1")])
    conv = rec.conversation_id
    seen = events.head(engine)
    reply = outbound.create_reply(engine, conv, agent_id=None, text="on its way")
    note = outbound.create_reply(engine, conv, agent_id=None, text="call them", private=True)
    assert outbound.claim(engine, reply) is not None
    outbound.mark_sent(engine, reply, SendResult(external_id="out-1", status="sent"))
    outbound.mark_failed(engine, reply, "too late")  # sent already: nothing moves, no event
    record_inbound(engine, channel, [StatusUpdate(external_id="out-1", status="delivered")])
    record_inbound(engine, channel, [StatusUpdate(external_id="out-1", status="sent")])  # backwards: nothing
    assert _kinds(engine, seen) == [
        ("message.created", conv, {"message_id": reply, "direction": "out", "private": False}),
        ("message.created", conv, {"message_id": note, "direction": "out", "private": True}),
        ("message.status", conv, {"message_id": reply, "status": "sent"}),
        ("message.status", conv, {"message_id": reply, "status": "delivered"}),
    ]
    with pytest.raises(LookupError):
        outbound.create_reply(engine, 999_999, agent_id=None, text="nobody")
    assert len(_all(engine, seen)) == 4
    seen = events.head(engine)
    second = outbound.create_reply(engine, conv, agent_id=None, text="again")
    assert outbound.claim(engine, second) is not None
    outbound.mark_failed(engine, second, "refused")
    assert store_conversations.retry(engine, second) and not store_conversations.retry(engine, second)
    assert [(kind, data.get("status")) for kind, _, data in _kinds(engine, seen)] == [
        ("message.created", None), ("message.status", "failed"), ("message.status", "pending")]


def test_assignment_moves_write_events(store_engine: Engine) -> None:
    engine = store_engine
    channel = _channel(engine)
    [rec] = record_inbound(engine, channel, [_msg("m1", thread_key="t1")])
    conv = rec.conversation_id
    ann, bob = _agent(engine, "Ann"), _agent(engine, "Bob")
    seen = events.head(engine)
    now = utcnow()
    with engine.begin() as conn:  # the routing writer (one statement on PostgreSQL)
        assignment.write_assignments(conn, [(conv, ann, now)], now, reason="routed")
    assignment.assign_manually(engine, conv, bob, by=bob)
    assignment.update_conversation(engine, conv, {"priority": 3, "status": "pending"})
    assignment.reopen(engine, conv)
    assignment.resolve(engine, conv, by=bob)
    assignment.reopen(engine, conv)
    assert [(row.type, row.conversation_id, row.agent_id, row.data) for row in _all(engine, seen)] == [
        ("conversation.updated", conv, None, {"assignee_id": ann, "reason": "routed"}),
        ("conversation.updated", conv, ann, {"assignee_id": bob, "reason": "manual"}),
        ("conversation.updated", conv, None, {"priority": 3, "status": "pending", "snoozed_until": None}),
        ("conversation.updated", conv, None, {"status": "open"}),
        ("conversation.updated", conv, None, {"status": "resolved"}),
        ("conversation.updated", conv, None, {"status": "open"}),
    ]
    # A routing write that fails its check rolls back with its events.
    seen = events.head(engine)
    with pytest.raises(assignment.ConcurrentChange), engine.begin() as conn:
        assignment.write_assignments(conn, [(conv, ann, now)], now, reason="routed")  # assigned already
    assert _all(engine, seen) == []
    assert agent_store.set_presence(engine, ann, "online")
    assert _kinds(engine, seen) == [("agent.presence", None, {"presence": "online"})]


def test_readers_get_what_they_may_see(store_engine: Engine) -> None:
    engine = store_engine
    channel = _channel(engine)
    ann, bob = _agent(engine, "Ann"), _agent(engine, "Bob", team_ids=["billing"])
    admin = _agent(engine, "Root", role="admin")
    queue, annes, teams = (r.conversation_id for r in record_inbound(
        engine, channel, [_msg("q", thread_key="q"), _msg("a", thread_key="a"), _msg("b", thread_key="b")]))
    team_id = agent_store.team_ids(engine, bob)[0]
    assignment.assign_manually(engine, annes, ann, by=admin)
    assignment.update_conversation(engine, teams, {"team_id": team_id})
    agent_store.set_presence(engine, bob, "online")

    def read(after: int, agent: int, *, admin: bool = False, limit: int = 500) -> list[Any]:
        return events.Reader(engine, after, agent_id=agent, admin=admin).read(limit)

    def seen_by(agent: int, *, admin: bool = False) -> set[int | None]:
        return {row.conversation_id for row in read(0, agent, admin=admin)}

    assert seen_by(ann) == {queue, annes, None}  # the queue, hers, presence
    assert seen_by(bob) == {queue, teams, None}  # the queue, his team's
    assert seen_by(admin, admin=True) == {queue, annes, teams, None}
    # Visibility is the conversation's now: Ann's goes to Bob; Ann gets the one event that took it.
    seen = events.head(engine)
    assignment.assign_manually(engine, annes, bob, by=admin)
    [taken] = read(seen, ann)
    assert (taken.conversation_id, taken.agent_id, taken.data["assignee_id"]) == (annes, ann, bob)
    assert {row.conversation_id for row in read(0, ann) if row.agent_id != ann} == {queue, None}
    assert annes in seen_by(bob)
    ordered = [row.id for row in read(0, admin, admin=True, limit=3)]
    assert ordered == sorted(ordered) and len(ordered) == 3
    # The reader's place moves over what the agent may not see: nothing read twice.
    reader = events.Reader(engine, 0, agent_id=bob, admin=False)
    assert reader.read() and reader.after == events.head(engine) and reader.read() == []


def test_prune_keeps_a_horizon_and_never_reuses_ids(store_engine: Engine) -> None:
    engine = store_engine
    agent = _agent(engine, "Ann")
    for presence in ("online", "away", "offline"):
        agent_store.set_presence(engine, agent, presence)
    assert events.horizon(engine) == 0 and events.prune(engine, 1) == 0  # nothing old enough
    ids = [row.id for row in _all(engine)]
    with engine.begin() as conn:
        conn.execute(update(events.events).where(E.id <= ids[1]).values(created_at=utcnow() - timedelta(hours=2)))
    assert events.prune(engine, 1) == 2
    assert events.horizon(engine) == ids[1]
    assert [row.id for row in events.Reader(engine, 0, agent_id=agent, admin=True).read()] == [ids[2]]
    with engine.begin() as conn:
        conn.execute(update(events.events).values(created_at=utcnow() - timedelta(hours=2)))
    assert events.prune(engine, 1) == 2 and events.horizon(engine) == ids[2]
    assert events.Reader(engine, 0, agent_id=agent, admin=True).read() == []
    agent_store.set_presence(engine, agent, "online")
    assert events.head(engine) > ids[2]  # the horizon's mark keeps the numbers going up


def test_a_reader_never_steps_over_an_uncommitted_event(store_engine: Engine) -> None:
    """A transaction that took an id and has not committed holds readers back: they get its event
    and the later ones in order once it commits (on SQLite the later writer waits; on PostgreSQL it
    commits first and its event waits), and step over an id that was rolled back."""
    engine = store_engine
    agent = _agent(engine, "Ann")
    reader = events.Reader.at_head(engine, agent_id=agent, admin=True, settle=0.5)
    done = threading.Event()

    def second() -> None:
        agent_store.set_presence(engine, agent, "away")
        done.set()

    with engine.begin() as conn:
        events.append(conn, [events.event("agent.presence", agent_id=agent, presence="online")])
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        if is_postgres(engine):  # (on SQLite a reader waits for the writer, as the second writer does)
            assert done.is_set(), "the second writer should not wait for the first"
            assert reader.read() == [], "an event was read past an uncommitted one"
    thread.join(10)
    assert done.is_set()
    assert [row.data["presence"] for row in reader.read()] == ["online", "away"]
    # A rolled-back id (PostgreSQL's sequence does not give it back) delays the reader, once.
    with pytest.raises(RuntimeError), engine.begin() as conn:
        events.append(conn, [events.event("agent.presence", agent_id=agent, presence="lost")])
        raise RuntimeError("rolled back")
    agent_store.set_presence(engine, agent, "offline")
    got = []
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        got = reader.read()
        time.sleep(0.1)
    assert [row.data["presence"] for row in got] == ["offline"]
    assert reader.after == events.head(engine)


def test_writers_ring_in_process(store_engine: Engine) -> None:
    engine = store_engine
    agent = _agent(engine, "Ann")
    rings: list[str] = []
    stop = wakeups.on_written(lambda: rings.append("ring"))
    try:
        with engine.connect() as conn:
            conn.execute(select(conversations.c.id)).all()  # a reader rings nobody
        assert rings == []
        agent_store.set_presence(engine, agent, "online")
        assert rings == ["ring"]
    finally:
        stop()
    agent_store.set_presence(engine, agent, "away")
    assert rings == ["ring"]
