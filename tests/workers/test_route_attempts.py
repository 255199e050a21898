"""Routing attempts are counted by the RouteAttempts middleware, around the actors: a job counts
one attempt per conversation still waiting, except the first delivery of a job whose attempt the
inbound store counted already; a conversation past its attempts is given up."""

from __future__ import annotations

import time
from typing import Any

import dramatiq
import pytest
from sqlalchemy import Engine, select, update

import workers
from connectors.base import Identity, InboundMessage
from store.channels import create_channel
from store.inbound import record_inbound
from store.sql import conversations

c = conversations.c


def _waiting(engine: Engine, name: str) -> int:
    """A conversation waiting for routing (no agent exists: it cannot be assigned)."""
    channel_id = create_channel(engine, "api", name, {"secret": "a-shared-secret-of-the-shop",
                                                       "callback_url": "http://127.0.0.1:9/replies"})
    event = InboundMessage(external_id=f"{name}-1", sender=Identity(f"{name}-customer"), text="hi", thread_key=name)
    [recorded] = record_inbound(engine, channel_id, [event])
    assert recorded.needs_routing and recorded.conversation_id is not None
    return recorded.conversation_id


def _channel_of(engine: Engine, conversation_id: int) -> int:
    with engine.connect() as conn:
        return conn.execute(select(c.channel_id).where(c.id == conversation_id)).scalar_one()


def _state(engine: Engine, conversation_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(c.route_attempts, c.needs_routing, c.route_error)
                            .where(c.id == conversation_id)).one()


def _set_attempts(engine: Engine, conversation_id: int, attempts: int) -> None:
    with engine.begin() as conn:
        conn.execute(update(conversations).where(c.id == conversation_id).values(route_attempts=attempts))


def _run(broker: dramatiq.Broker, *jobs: dramatiq.Message[Any]) -> None:
    """Deliver jobs to a real dramatiq worker on the in-process broker and wait for them."""
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        for message in jobs:
            broker.enqueue(message)
        broker.join("route", timeout=20_000)
        worker.join()
    finally:
        worker.stop()


@pytest.mark.parametrize("actor", ["route", "route_batch"])
def test_a_job_counts_an_attempt_and_the_last_one_gives_up(store_engine: Engine, actor: str) -> None:
    engine = store_engine
    limit = workers.get_settings().max_attempts
    spent, fresh = _waiting(engine, "spent"), _waiting(engine, "fresh")
    _set_attempts(engine, spent, limit)
    broker = workers.setup_broker(None)
    job = getattr(workers, actor)
    _run(broker, *(job.message(*((i,) if actor == "route" else ([i],))) for i in (spent, fresh)))
    state = _state(engine, spent)
    assert state.needs_routing is False and state.route_error.startswith(f"gave up after {limit} attempts")
    fresh_state = _state(engine, fresh)  # counted (2: the store's, then this job's), then queued
    assert fresh_state.route_error is None and fresh_state.needs_routing is False


def test_a_job_with_nothing_left_to_route_counts_nothing(store_engine: Engine) -> None:
    engine = store_engine
    done = _waiting(engine, "done")
    with engine.begin() as conn:
        conn.execute(update(conversations).where(c.id == done).values(needs_routing=False, route_attempts=0))
    _run(workers.setup_broker(None), workers.route_batch.message([done]))
    assert _state(engine, done).route_attempts == 0


def test_outside_a_worker_the_actor_routes_what_it_is_given(store_engine: Engine) -> None:
    engine = store_engine
    conversation_id = _waiting(engine, "direct")
    assert workers.RouteAttempts.todo([conversation_id]) == [conversation_id]
    workers.route_batch([conversation_id])  # as a script or a test calls it: nothing counted
    state = _state(engine, conversation_id)
    assert state.needs_routing is False and state.route_attempts == 0


def test_a_conversation_held_from_its_automations_is_routed_again_at_once(store_engine: Engine,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent changed the conversation while its automations decided: the job leaves it needing
    routing and routes it again shortly itself (not after the sweep's grace), where its language
    is told and it is queued."""
    import router.automation
    from store.assignment import update_conversation

    engine = store_engine
    conversation_id = _waiting(engine, "held")
    channel_id = _channel_of(engine, conversation_id)  # and something to tell a language from:
    record_inbound(engine, channel_id, [InboundMessage(external_id="held-2", sender=Identity("held-customer"),
                                                       text="Bonjour, où est ma commande ?", thread_key="held")])
    decide = router.automation.automate
    decisions: list[float] = []

    def meanwhile(*args: Any, **kw: Any) -> Any:
        if not decisions:
            update_conversation(engine, conversation_id, {"priority": 1})  # an agent, meanwhile
        decisions.append(time.monotonic())
        return decide(*args, **kw)

    monkeypatch.setattr(router.automation, "automate", meanwhile)
    _run(workers.setup_broker(None), workers.route_batch.message([conversation_id], True))
    assert len(decisions) == 2 and decisions[1] - decisions[0] < workers.get_settings().sweep_grace
    with engine.connect() as conn:
        row = conn.execute(select(c.needs_routing, c.language, c.priority, c.automated_through)
                           .where(c.id == conversation_id)).one()
    assert (row.needs_routing, row.language, row.priority) == (False, "fr", 1) and row.automated_through
