"""Assignment in the store, on SQLite and PostgreSQL: a conversation going (back) to the queue
waits behind those waiting longer, manual assignment refuses a missing or deactivated agent, and
errors never carry the statement's parameters."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, exc, func, select, update

from router.route import fill_agent, route_conversations
from store import agents as agent_store
from store import assignment
from store.models import utcnow
from store.sql import agents, assignments, conversations
from tests.support import channel_and_contact

c = conversations.c
ROOT = Path(__file__).resolve().parents[2]


def _conversations(engine: Engine, *waited: int | None, **values: Any) -> list[int]:
    """Open unassigned conversations, each waiting the given minutes (None: no waiting time)."""
    now = utcnow()
    with engine.begin() as conn:
        channel_id, contact_id = channel_and_contact(conn, now, "t")
        rows = [dict(channel_id=channel_id, contact_id=contact_id, status="open", priority=0, needs_routing=False,
                     waiting_since=None if m is None else now - timedelta(minutes=m), created_at=now,
                     updated_at=now) | values for m in waited]
        return list(conn.execute(conversations.insert().returning(c.id, sort_by_parameter_order=True), rows)
                    .scalars())


def _agent(engine: Engine, name: str, **kw: Any) -> int:
    return agent_store.create_agent(engine, name=name, email=f"{name.lower()}@shop.test", **kw)[0]


def _row(engine: Engine, conversation_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(conversations).where(c.id == conversation_id)).one()


def test_a_reopened_conversation_queues_behind_those_really_waiting(store_engine: Engine) -> None:
    engine = store_engine
    reopened, older, newer, answered = _conversations(engine, 90, 30, 20, None)
    assert assignment.resolve(engine, reopened, by=None) is None
    assert _row(engine, reopened).waiting_since is None
    assert assignment.reopen(engine, reopened) is True  # unassigned: back through the router
    row = _row(engine, reopened)
    assert row.needs_routing and row.waiting_since is not None
    assert row.waiting_since > _row(engine, newer).waiting_since
    [outcome] = route_conversations(engine, [reopened])  # nobody online: it waits
    assert outcome.agent_id is None and outcome.skipped is None

    agent_id = _agent(engine, "Ann", capacity=3, presence="online")
    # Longest waiting first, the reopened one after them, the one already answered last: on
    # SQLite a NULL waiting time sorted first, so a reopened conversation jumped the queue.
    assert fill_agent(engine, agent_id) == [older, newer, reopened]
    assert _row(engine, answered).assignee_id is None


def test_back_to_the_queue_with_a_waiting_time(store_engine: Engine) -> None:
    engine = store_engine
    answered, waiting = _conversations(engine, None, 10)
    agent_id = _agent(engine, "Ben", capacity=5, presence="online")
    assignment.assign_manually(engine, answered, agent_id, by=agent_id)
    assert assignment.assign_manually(engine, answered, None, by=agent_id) == agent_id
    row = _row(engine, answered)
    assert row.assignee_id is None and row.needs_routing and row.waiting_since is not None
    assert row.waiting_since > _row(engine, waiting).waiting_since  # an existing waiting time stays
    kept = _row(engine, waiting).waiting_since
    assert assignment.update_conversation(engine, waiting, {"language": "de"}) is True
    assert _row(engine, waiting).waiting_since == kept
    assert assignment.update_conversation(engine, waiting, {"language": ""}) is True  # no language again
    assert _row(engine, waiting).language is None


def test_manual_assignment_refuses_a_missing_or_deactivated_agent(store_engine: Engine) -> None:
    engine = store_engine
    [conv] = _conversations(engine, 5)
    holder = _agent(engine, "Holder", capacity=1, presence="online")
    gone = _agent(engine, "Gone", capacity=5, presence="offline")
    with engine.begin() as conn:
        conn.execute(update(agents).where(agents.c.id == gone).values(active=False))
    assignment.assign_manually(engine, conv, holder, by=holder)

    with pytest.raises(LookupError, match=f"agent {gone} is deactivated"):
        assignment.assign_manually(engine, conv, gone, by=holder)
    with pytest.raises(LookupError, match="agent 999999 does not exist"):
        assignment.assign_manually(engine, conv, 999999, by=holder)
    with pytest.raises(LookupError, match="conversation 999999 does not exist"):
        assignment.assign_manually(engine, 999999, holder, by=holder)
    with engine.connect() as conn:  # nothing moved
        assert conn.execute(select(c.assignee_id).where(c.id == conv)).scalar_one() == holder
        counts = dict(conn.execute(select(agents.c.id, agents.c.active_count)).all())
        assert counts == {holder: 1, gone: 0}
        log = conn.execute(select(assignments.c.agent_id, assignments.c.by_agent_id, assignments.c.reason)
                           .order_by(assignments.c.id)).all()
    assert [tuple(r) for r in log] == [(holder, holder, "manual")]


def test_manual_assignment_may_pass_capacity_and_moves_the_count(store_engine: Engine) -> None:
    engine = store_engine
    first, second = _conversations(engine, 5, 4)
    full = _agent(engine, "Full", capacity=1, presence="online")
    other = _agent(engine, "Other", capacity=3, presence="online")
    assert assignment.assign_manually(engine, first, full, by=other) is None
    assert assignment.assign_manually(engine, second, full, by=other) is None  # a person's decision
    assert assignment.assign_manually(engine, second, other, by=other) == full  # capacity freed
    with engine.connect() as conn:
        assert dict(conn.execute(select(agents.c.id, agents.c.active_count)).all()) == {full: 1, other: 1}
        assert conn.execute(select(func.count()).select_from(assignments)
                            .where(assignments.c.reason == "manual")).scalar_one() == 3
    assignment.resolve(engine, first, by=full)
    with pytest.raises(ValueError, match="resolved"):
        assignment.assign_manually(engine, first, other, by=other)


def test_errors_do_not_carry_parameters(store_engine: Engine) -> None:
    engine = store_engine
    secret = "my card number is 4111 1111 1111 1111"
    _agent(engine, "Dup")
    with pytest.raises(exc.IntegrityError) as raised, engine.begin() as conn:
        conn.execute(agents.insert().values(name=secret, email="dup@shop.test", role="agent", presence="offline",
                                            capacity=1, active_count=0, active=True, created_at=utcnow()))
    assert secret not in str(raised.value)
    assert "hidden" in str(raised.value)


def test_one_module_knows_the_dialects() -> None:
    """Only store.dialect (and the migrations, which build each database's own objects, such as
    PostgreSQL's full-text indexes and SQLite's FTS5 tables) asks which database it talks to."""
    shipped = [p for top in ("connectors", "store", "router", "web") for p in (ROOT / top).rglob("*.py")]
    shipped += [ROOT / "workers.py", ROOT / "cli.py"]
    asking = {str(p.relative_to(ROOT)) for p in shipped if re.search(r"dialect\.name\b", p.read_text())
              and "store/migrations/" not in p.as_posix()}
    assert asking == {"store/dialect.py"}


def test_routing_leaves_conversations_taken_or_closed_meanwhile(store_engine: Engine) -> None:
    engine = store_engine
    agent_id = _agent(engine, "Cy", capacity=5, presence="online")
    held, closed, waiting = _conversations(engine, 9, 8, 7, needs_routing=True)
    with engine.begin() as conn:  # taken by hand and resolved since their routing job was rung
        conn.execute(update(conversations).where(c.id == held).values(assignee_id=agent_id))
        conn.execute(update(conversations).where(c.id == closed).values(status="resolved"))
        conn.execute(update(agents).where(agents.c.id == agent_id).values(active_count=1))
    outcomes = {o.conversation_id: o for o in route_conversations(engine, [held, closed, waiting])}
    assert outcomes[held].agent_id == agent_id and outcomes[held].skipped == f"open, assigned {agent_id}"
    assert outcomes[closed].agent_id is None and outcomes[closed].skipped == "resolved, assigned None"
    assert outcomes[waiting].agent_id == agent_id and outcomes[waiting].skipped is None
    with engine.connect() as conn:
        assert not any(conn.execute(select(c.needs_routing).where(c.id.in_([held, closed, waiting]))).scalars())
        assert conn.execute(select(agents.c.active_count)).scalar_one() == 2
