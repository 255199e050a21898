"""Batch routing, on SQLite and PostgreSQL: one transaction routes many conversations as routing
them one at a time in queue order would, within the same team, language and capacity rules."""

from __future__ import annotations

import dataclasses
import itertools
import json
from datetime import timedelta
from typing import Any

import dramatiq
import pytest
from sqlalchemy import Engine, delete, func, select, update

import workers
from connectors.base import Identity, InboundMessage
from router.route import fill_agent, route_conversation, route_conversations
from store import agents as agent_store
from store import assignment, jobs
from store.inbound import Recorded, record_inbound
from store.models import utcnow
from store.sql import agents, assignments, conversations, teams
from tests.support import channel_and_contact

c = conversations.c


def _world(engine: Engine) -> tuple[int, int]:
    now = utcnow()
    with engine.begin() as conn:
        channel_id, contact_id = channel_and_contact(conn, now, "t")
    return channel_id, contact_id


def _waiting(engine: Engine, world: tuple[int, int], n: int, **values: Any) -> list[int]:
    """``n`` open conversations waiting for routing, each waiting one second less than the last."""
    channel_id, contact_id = world
    start = utcnow() - timedelta(hours=1)
    with engine.begin() as conn:
        base = conn.execute(select(func.count()).select_from(conversations)).scalar_one()
        rows = [dict(channel_id=channel_id, contact_id=contact_id, status="open", priority=0, needs_routing=True,
                     route_attempts=0, waiting_since=start + timedelta(seconds=base + i), created_at=start,
                     updated_at=start) | values for i in range(n)]
        return list(conn.execute(conversations.insert().returning(c.id, sort_by_parameter_order=True), rows)
                    .scalars())


def _agent(engine: Engine, name: str, **kw: Any) -> int:
    kw.setdefault("presence", "online")
    return agent_store.create_agent(engine, name=name, email=f"{name.lower()}@shop.test", **kw)[0]


def _team(engine: Engine, name: str) -> int:
    with engine.begin() as conn:
        return conn.execute(teams.insert().values(name=name).returning(teams.c.id)).scalar_one()


def _state(engine: Engine, ids: list[int]) -> dict[int, Any]:
    with engine.connect() as conn:
        return {r.id: r for r in conn.execute(
            select(c.id, c.assignee_id, c.last_assignee_id, c.needs_routing, c.route_attempts, c.route_error)
            .where(c.id.in_(ids)))}


def _consistent(engine: Engine) -> dict[int, int]:
    """Every agent's count is their open assigned conversations, within capacity; each
    conversation was routed or pulled at most once. Returns the counts."""
    with engine.connect() as conn:
        held = dict(conn.execute(select(c.assignee_id, func.count()).where(
            c.status == "open", c.assignee_id.is_not(None)).group_by(c.assignee_id)).all())
        for agent_id, count, capacity in conn.execute(select(agents.c.id, agents.c.active_count, agents.c.capacity)):
            assert count == held.get(agent_id, 0), (agent_id, count, held)
            assert count <= capacity, (agent_id, count, capacity)
        twice = conn.execute(
            select(assignments.c.conversation_id).where(assignments.c.reason.in_(["routed", "pulled"]))
            .group_by(assignments.c.conversation_id).having(func.count() > 1)).scalars().all()
        assert twice == []
    return held


def test_a_batch_spreads_as_one_at_a_time_least_loaded(store_engine: Engine) -> None:
    engine = store_engine
    world = _world(engine)
    big, small = _agent(engine, "Big", capacity=5), _agent(engine, "Small", capacity=3)
    busy = _agent(engine, "Busy", capacity=4)
    # Busy already holds one conversation, assigned an hour ago.
    [held] = _waiting(engine, world, 1)
    assert route_conversations(engine, [held])[0].agent_id == big  # most spare, never assigned before Busy
    assignment.assign_manually(engine, held, busy, by=busy)
    with engine.begin() as conn:
        conn.execute(update(agents).values(last_assigned_at=None))
        conn.execute(update(agents).where(agents.c.id == busy).values(last_assigned_at=utcnow() - timedelta(hours=1)))
        initial = {r.id: r for r in conn.execute(select(agents.c.id, agents.c.active_count, agents.c.last_assigned_at))}
    ids = _waiting(engine, world, 9)
    ids += _waiting(engine, world, 2, priority=5)  # go first, though they came last
    ids += _waiting(engine, world, 1)  # room for 11 of these 12: the youngest waits

    batch = {o.conversation_id: o.agent_id for o in route_conversations(engine, ids[::-1])}
    assert sum(v is not None for v in batch.values()) == 11
    assert batch[ids[-1]] is None
    _consistent(engine)
    with engine.connect() as conn:
        assert dict(conn.execute(select(agents.c.id, agents.c.active_count)).all()) == {big: 5, small: 3, busy: 4}
        picked_in = conn.execute(select(assignments.c.conversation_id).where(
            assignments.c.reason == "routed", assignments.c.conversation_id.in_(ids)).order_by(
            assignments.c.created_at, assignments.c.id)).scalars().all()
    queue_order = ids[9:11] + ids[:9]
    assert picked_in == queue_order  # stamped in the order they were taken

    # The same conversations from the same start, one at a time in queue order: the same picks.
    with engine.begin() as conn:
        conn.execute(update(conversations).where(c.id.in_(ids))
                     .values(assignee_id=None, needs_routing=True))
        conn.execute(delete(assignments).where(assignments.c.conversation_id.in_(ids)))
        for agent_id, row in initial.items():
            conn.execute(update(agents).where(agents.c.id == agent_id)
                         .values(active_count=row.active_count, last_assigned_at=row.last_assigned_at))
    single = {cid: route_conversation(engine, cid).agent_id for cid in queue_order + ids[-1:]}
    assert single == batch
    _consistent(engine)


def test_round_robin_batch_takes_turns(store_engine: Engine) -> None:
    engine = store_engine
    world = _world(engine)
    trio = [_agent(engine, name, capacity=10) for name in ("Ann", "Ben", "Cy")]
    ids = _waiting(engine, world, 7)
    got = [o.agent_id for o in route_conversations(engine, ids, policy="round_robin")]
    assert got == [*trio, *trio, trio[0]]


def test_team_and_language_hold_in_a_batch(store_engine: Engine) -> None:
    engine = store_engine
    world = _world(engine)
    billing = _team(engine, "Billing")
    german = _agent(engine, "Greta", capacity=2, team_ids=[billing], languages=["de"])
    english = _agent(engine, "Eve", capacity=4, languages=["en"])
    billing_en = _agent(engine, "Bill", capacity=4, team_ids=[billing], languages=["en"])
    skills = {german: ({billing}, {"de"}), english: (set(), {"en"}), billing_en: ({billing}, {"en"})}

    de_billing = _waiting(engine, world, 3, team_id=billing, language="de")
    en = _waiting(engine, world, 3, language="en")
    any_billing = _waiting(engine, world, 2, team_id=billing)
    fr = _waiting(engine, world, 1, language="fr")
    ids = de_billing + en + any_billing + fr
    outcomes = {o.conversation_id: o.agent_id for o in route_conversations(engine, ids)}

    with engine.connect() as conn:
        wanted = {r.id: r for r in conn.execute(select(c.id, c.team_id, c.language).where(c.id.in_(ids)))}
    for conv_id, agent_id in outcomes.items():
        if agent_id is not None:
            team_ids, languages = skills[agent_id]
            assert wanted[conv_id].team_id in (None, *team_ids), (conv_id, agent_id)
            assert wanted[conv_id].language in (None, *languages), (conv_id, agent_id)
    # Only Greta may take the German billing ones: two fit, the third waits, as does French.
    assert [outcomes[i] for i in de_billing] == [german, german, None]
    assert outcomes[fr[0]] is None
    assert all(outcomes[i] in (english, billing_en) for i in en)
    assert all(outcomes[i] == billing_en for i in any_billing)  # Greta is full by then
    state = _state(engine, ids)
    for waiting in (de_billing[2], fr[0]):
        assert state[waiting].assignee_id is None and state[waiting].needs_routing is False
    _consistent(engine)

    # Greta resolves one: the German conversation that waited is pulled, not the French one.
    assignment.resolve(engine, de_billing[0], by=german)
    assert fill_agent(engine, german) == [de_billing[2]]
    _consistent(engine)


def test_nobody_eligible_waits_and_is_pulled_when_capacity_frees(store_engine: Engine) -> None:
    engine = store_engine
    world = _world(engine)
    agent_id = _agent(engine, "Late", capacity=2, presence="offline")
    ids = _waiting(engine, world, 3)
    urgent = _waiting(engine, world, 1, priority=3)
    outcomes = route_conversations(engine, ids + urgent)
    assert [o.agent_id for o in outcomes] == [None] * 4 and all(o.skipped is None for o in outcomes)
    state = _state(engine, ids + urgent)
    assert all(r.assignee_id is None and r.needs_routing is False and r.route_attempts == 0 for r in state.values())

    assert agent_store.set_presence(engine, agent_id, "online")
    assert fill_agent(engine, agent_id) == [urgent[0], ids[0]]  # priority, then waiting time
    assert _consistent(engine) == {agent_id: 2}
    # A batch naming conversations that no longer need routing leaves them alone.
    again = route_conversations(engine, ids + urgent)
    assert all(o.skipped for o in again)
    assert _consistent(engine) == {agent_id: 2}


def test_attempts_are_counted_and_the_spent_give_up(store_engine: Engine) -> None:
    engine = store_engine
    world = _world(engine)
    _agent(engine, "Anyone", capacity=10)
    fresh = _waiting(engine, world, 2)
    [tired] = _waiting(engine, world, 1, route_attempts=3, route_error="OperationalError: server closed")
    [done] = _waiting(engine, world, 1, needs_routing=False)

    todo = jobs.begin_route_attempts(engine, [*fresh, tired, done, fresh[0]])
    assert todo == [*fresh, tired]  # counted once each; the one not waiting is left alone
    state = _state(engine, [*fresh, tired, done])
    assert [state[i].route_attempts for i in [*fresh, tired]] == [1, 1, 4]
    assert state[done].route_attempts == 0

    jobs.route_error(engine, fresh, "RuntimeError: boom")
    assert {r.route_error for r in _state(engine, fresh).values()} == {"RuntimeError: boom"}
    outcomes = route_conversations(engine, todo, max_attempts=3)
    assert [o.skipped for o in outcomes] == [None, None, "gave up after 3 attempts"]
    state = _state(engine, [*fresh, tired])
    assert all(state[i].assignee_id is not None and state[i].route_attempts == 0 and state[i].route_error is None
               for i in fresh)
    # The spent one is not routed; it keeps its last error for an admin and leaves the router.
    assert state[tired].assignee_id is None and state[tired].needs_routing is False
    assert state[tired].route_error == "gave up after 3 attempts: OperationalError: server closed"
    _consistent(engine)


def _deliver(broker: Any, message: dramatiq.Message) -> None:
    """Deliver one message to a real dramatiq worker on the in-process broker and wait for it."""
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        broker.enqueue(message)
        broker.join(message.queue_name, timeout=20_000)
        worker.join()
    finally:
        worker.stop()


@pytest.mark.parametrize(("age_ms", "retries", "counts"), [(0, 0, False), (workers.COUNTED_FRESH_MS + 1000, 0, True),
                                                           (0, 1, True)],
                         ids=["first-delivery", "back-after-worker-died", "retry"])
def test_a_job_whose_attempt_the_store_counted_counts_again_only_when_redelivered(
        store_engine: Engine, age_ms: int, retries: int, counts: bool) -> None:
    """The inbound store counts the first routing attempt with the message; the job it rings uses
    that count on its first delivery only. Redelivered (its worker died: it comes back older than
    COUNTED_FRESH_MS) or retried, it counts again, so a conversation that keeps killing its
    worker still stops after max_attempts. Seen here on a conversation at its last attempt."""
    engine = store_engine
    world = _world(engine)
    _agent(engine, "Anyone", capacity=10)
    limit = workers.get_settings().max_attempts
    [last] = _waiting(engine, world, 1, route_attempts=limit)
    broker = workers.setup_broker(None)
    message = workers.route_batch.message_with_options(args=([last], True))
    message = message.copy(message_timestamp=message.message_timestamp - age_ms,
                           options={**message.options, "retries": retries})
    _deliver(broker, message)
    state = _state(engine, [last])[last]
    if counts:
        assert state.assignee_id is None and state.needs_routing is False
        assert state.route_error.startswith(f"gave up after {limit} attempts")
    else:
        assert state.assignee_id is not None and state.route_attempts == 0


def test_the_inbound_store_counts_the_first_routing_attempt(store_engine: Engine) -> None:
    engine = store_engine
    channel_id, _ = _world(engine)
    first = InboundMessage(external_id="m1", sender=Identity("c1", name="C"), text="hello", thread_key="t1")
    again = dataclasses.replace(first, external_id="m2", text="still there?")
    [one] = record_inbound(engine, channel_id, [first])
    assert one.needs_routing and _state(engine, [one.conversation_id])[one.conversation_id].route_attempts == 1
    [two] = record_inbound(engine, channel_id, [again])  # not routed yet: a second job, counted too
    conversation = one.conversation_id
    assert two.conversation_id == conversation and two.needs_routing
    assert _state(engine, [conversation])[conversation].route_attempts == 2
    # Past its attempts (no agent exists here; the limit is what counts) the router gives up ...
    jobs.route_error(engine, [conversation], "RuntimeError: boom")
    [outcome] = route_conversations(engine, [conversation], max_attempts=1)
    assert outcome.skipped == "gave up after 1 attempts"
    state = _state(engine, [conversation])[conversation]
    assert not state.needs_routing and state.route_error == "gave up after 1 attempts: RuntimeError: boom"
    # ... and the customer's next message starts afresh.
    later = dataclasses.replace(first, external_id="m3", text="hello?")
    [three] = record_inbound(engine, channel_id, [later])
    assert three.conversation_id == conversation and three.needs_routing
    state = _state(engine, [conversation])[conversation]
    assert state.needs_routing and state.route_attempts == 1 and state.route_error is None


def test_the_route_batch_actor_counts_then_routes(store_engine: Engine) -> None:
    engine = store_engine
    world = _world(engine)
    agent_id = _agent(engine, "Solo", capacity=2)
    ids = _waiting(engine, world, 3)
    workers.route_batch(ids)  # the actor's function, run here
    state = _state(engine, ids)
    assert [state[i].assignee_id for i in ids] == [agent_id, agent_id, None]
    assert all(r.needs_routing is False and r.route_attempts == 0 for r in state.values())
    [late] = _waiting(engine, world, 1)
    workers.route(late)  # the one-conversation actor goes the same way
    assert _state(engine, [late])[late].needs_routing is False
    assert _consistent(engine) == {agent_id: 2}


def test_after_inbound_rings_once_per_chunk() -> None:
    broker = workers.setup_broker(None)
    recorded = [Recorded(n, n % 450 + 1, needs_routing=True) for n in range(500)]  # 50 repeated
    recorded += [Recorded(1000, 9999, needs_routing=False), Recorded(None, None, duplicate=True)]
    workers.after_inbound(recorded)
    sent = []
    while not broker.queues["route"].empty():
        message = dramatiq.Message.decode(broker.queues["route"].get())
        assert message.actor_name == "route_batch"
        assert message.args[1] is True  # the store counted these jobs' first attempts
        sent.append(message.args[0])
    assert [len(ids) for ids in sent] == [200, 200, 50]
    assert sorted(itertools.chain(*sent)) == list(range(1, 451))
    json.dumps(sent)  # plain ids, as any broker carries them
