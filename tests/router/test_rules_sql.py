"""The SQL forms of the routing rules against the rules themselves, on SQLite and PostgreSQL:
over many random agents and conversations, the agents the database finds available, the queue it
orders, and the conversations it pulls for an agent are exactly what router.eligibility and
router.queue say."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from router.eligibility import available, fits
from router.queue import queue
from router.route import fill_agent
from store.assignment_batch import AVAILABLE, IN_QUEUE, QUEUE_ORDER, AgentState, ConversationState, queue_for_agent
from store.models import utcnow
from store.sql import agent_languages, agent_teams, agents, conversations, teams
from tests.support import channel_and_contact

LANGUAGES = ["de", "en", "fr"]


def _random_world(engine: Engine, rng: random.Random) -> tuple[list[AgentState], list[ConversationState]]:
    """Agents and conversations with every combination the rules look at, written to the
    database; returns them as the rules see them (built from what was written, not read back)."""
    now = utcnow().replace(microsecond=0)
    with engine.begin() as conn:
        channel_id, contact_id = channel_and_contact(conn, now, "t")
        team_ids = [conn.execute(teams.insert().values(name=f"T{i}").returning(teams.c.id)).scalar_one()
                    for i in range(3)]
        pool = []
        for i in range(14):
            capacity = rng.randint(0, 4)
            state = AgentState(0, capacity, rng.randint(0, capacity + 1), None,
                               presence=rng.choice(["online", "online", "online", "away", "offline"]),
                               active=rng.random() > 0.15,
                               teams=set(rng.sample(team_ids, rng.randint(0, 2))),
                               languages=set(rng.sample(LANGUAGES, rng.randint(0, 2))))
            state.id = conn.execute(agents.insert().values(
                name=f"A{i}", email=f"a{i}@shop.test", role="agent", presence=state.presence, capacity=capacity,
                active_count=state.active_count, active=state.active, created_at=now).returning(agents.c.id)
            ).scalar_one()
            for team_id in state.teams:
                conn.execute(agent_teams.insert().values(agent_id=state.id, team_id=team_id))
            for language in state.languages:
                conn.execute(agent_languages.insert().values(agent_id=state.id, language=language))
            pool.append(state)
        times = [now - timedelta(minutes=m) for m in (1, 5, 5, 30, 90)]  # ties, so the id decides
        rows = []
        for _ in range(160):
            rows.append(dict(
                channel_id=channel_id, contact_id=contact_id, created_at=now, updated_at=now,
                status=rng.choice(["open"] * 6 + ["pending", "snoozed", "resolved"]),
                assignee_id=rng.choice([None] * 8 + [a.id for a in pool[:3]]),
                priority=rng.choice([-1, 0, 0, 0, 1, 3]),
                waiting_since=rng.choice([*times, None, None]),
                team_id=rng.choice([None, None, *team_ids]),
                language=rng.choice([None, None, "", "es", *LANGUAGES]),
                needs_routing=rng.random() < 0.3,
            ))
        ids = conn.execute(conversations.insert().returning(conversations.c.id, sort_by_parameter_order=True),
                           rows).scalars().all()
    convs = [ConversationState(i, r["priority"], r["waiting_since"], r["team_id"], r["language"], r["status"],
                               r["assignee_id"]) for i, r in zip(ids, rows, strict=True)]
    return pool, convs


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sql_forms_select_and_order_as_the_rules(store_engine: Engine, seed: int) -> None:
    engine = store_engine
    pool, convs = _random_world(engine, random.Random(seed))
    expected_queue = [conv.id for conv in queue(convs)]
    assert any(conv.waiting_since is None for conv in queue(convs))  # the world has what is tested
    with engine.connect() as conn:
        assert conn.execute(select(agents.c.id).where(AVAILABLE).order_by(agents.c.id)).scalars().all() == [
            a.id for a in pool if available(a)]
        assert conn.execute(select(conversations.c.id).where(IN_QUEUE).order_by(*QUEUE_ORDER)
                            ).scalars().all() == expected_queue
        for agent in pool:
            theirs = [conv.id for conv in queue(convs) if fits(agent, conv)]
            for limit in (1, 4, 1000):
                pulled = conn.execute(queue_for_agent(agent.id, limit)).scalars().all()
                assert pulled == theirs[:limit], (agent, limit)


@pytest.mark.parametrize("seed", [4, 5])
def test_fill_agent_pulls_what_the_rules_pick(store_engine: Engine, seed: int) -> None:
    """Each agent in turn pulls from the queue: exactly the first conversations of the queue it
    may take, as many as its room; unavailable agents pull nothing."""
    engine = store_engine
    pool, convs = _random_world(engine, random.Random(seed))
    by_id = {conv.id: conv for conv in convs}
    pulled_any = False
    for agent in pool:
        room = agent.capacity - agent.active_count if available(agent) else 0
        expected = [conv.id for conv in queue(by_id.values()) if fits(agent, conv)][:max(room, 0)]
        assert fill_agent(engine, agent.id) == expected, agent
        pulled_any = pulled_any or bool(expected)
        for conv_id in expected:  # now assigned: out of the queue
            by_id[conv_id] = ConversationState(conv_id, by_id[conv_id].priority, by_id[conv_id].waiting_since,
                                               by_id[conv_id].team_id, by_id[conv_id].language, "open", agent.id)
    assert pulled_any
    with engine.connect() as conn:
        held = dict(conn.execute(select(conversations.c.id, conversations.c.assignee_id)).all())
    assert held == {conv.id: conv.assignee_id for conv in by_id.values()}
