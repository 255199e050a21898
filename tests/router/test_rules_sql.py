"""The SQL forms of the routing rules against the rules themselves, on SQLite and PostgreSQL:
over many random agents and conversations, the agents the database finds available, the queue it
orders, and the conversations it pulls for an agent (by team, language, skills and the room of
each capacity group) are exactly what router.eligibility and router.queue say."""

from __future__ import annotations

import copy
import random
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from connectors import GROUPS, capacity_group
from router.eligibility import available, eligible, fits
from router.queue import pullable, queue
from router.route import fill_agent
from store.assignment_batch import AVAILABLE, IN_QUEUE, QUEUE_ORDER, AgentState, ConversationState, queue_for_agent
from store.models import utcnow
from store.sql import agent_languages, agent_teams, agents, channels, conversations, teams
from tests.support import channel_and_contact

LANGUAGES = ["de", "en", "fr"]
SKILLS = ["returns", "b2b", "vip"]
KINDS = ["api", "email", "webchat", "sms"]


def _random_world(engine: Engine, rng: random.Random) -> tuple[list[AgentState], list[ConversationState]]:
    """Agents and conversations with every combination the rules look at, written to the
    database; returns them as the rules see them (built from what was written, not read back)."""
    now = utcnow().replace(microsecond=0)
    with engine.begin() as conn:
        api_id, contact_id = channel_and_contact(conn, now, "t")
        kind_of = {api_id: "api"}
        for kind in KINDS[1:]:
            kind_of[conn.execute(channels.insert().values(
                kind=kind, name=kind, config={}, enabled=True, status="ok", error_count=0, created_at=now,
                updated_at=now).returning(channels.c.id)).scalar_one()] = kind
        defaults = [None, {"email": 2, "chat": 1}, {"messaging": 1, "chat": 3}]
        team_ids = [conn.execute(teams.insert().values(name=f"T{i}", capacities=defaults[i])
                                 .returning(teams.c.id)).scalar_one() for i in range(3)]
        team_caps = dict(zip(team_ids, defaults, strict=True))
        pool = []
        for i in range(14):
            capacity = rng.randint(0, 6)
            own = {g: rng.randint(0, 2) for g in rng.sample(GROUPS, rng.randint(0, 3))}
            state = AgentState(0, capacity, 0, None,
                               presence=rng.choice(["online", "online", "online", "away", "offline"]),
                               active=rng.random() > 0.15,
                               teams=set(rng.sample(team_ids, rng.randint(0, 2))),
                               languages=set(rng.sample(LANGUAGES, rng.randint(0, 2))),
                               skills=set(rng.sample(SKILLS, rng.randint(0, 2))))
            merged: dict[str, int] = {}
            for team_id in state.teams:  # the smallest team default, under the agent's own
                for group, n in (team_caps[team_id] or {}).items():
                    merged[group] = min(n, merged.get(group, n))
            state.capacities = {**merged, **own}
            state.id = conn.execute(agents.insert().values(
                name=f"A{i}", email=f"a{i}@shop.test", role="agent", presence=state.presence, capacity=capacity,
                capacities=own or None, skills=sorted(state.skills) if rng.random() < 0.8 or state.skills else None,
                active_count=0, active=state.active, created_at=now).returning(agents.c.id)
            ).scalar_one()
            for team_id in state.teams:
                conn.execute(agent_teams.insert().values(agent_id=state.id, team_id=team_id))
            for language in state.languages:
                conn.execute(agent_languages.insert().values(agent_id=state.id, language=language))
            pool.append(state)
        times = [now - timedelta(minutes=m) for m in (1, 5, 5, 30, 90)]  # ties, so the id decides
        rows = []
        for _ in range(200):
            status = rng.choice(["open"] * 6 + ["pending", "snoozed", "resolved"])
            holder = rng.choice([None] * 6 + pool[:5])
            skills = rng.choice([None, [], [], ["returns"], ["b2b", "vip"], ["vip"], ["gold"]])
            rows.append(dict(
                channel_id=rng.choice(list(kind_of)), contact_id=contact_id, created_at=now, updated_at=now,
                status=status, assignee_id=holder.id if holder else None,
                priority=rng.choice([-1, 0, 0, 0, 1, 3]),
                waiting_since=rng.choice([*times, None, None]),
                team_id=rng.choice([None, None, *team_ids]),
                language=rng.choice([None, None, "", "es", *LANGUAGES]),
                skills=skills, skills_widened_at=now if rng.random() < 0.2 else None,
                needs_routing=rng.random() < 0.3,
            ))
            if holder is not None and status != "resolved":  # the load it counts (over capacity too)
                group = capacity_group(kind_of[rows[-1]["channel_id"]])
                holder.loads[group] = holder.loads.get(group, 0) + 1
                holder.active_count += 1
        for state in pool:
            conn.execute(agents.update().where(agents.c.id == state.id).values(active_count=state.active_count))
        ids = conn.execute(conversations.insert().returning(conversations.c.id, sort_by_parameter_order=True),
                           rows).scalars().all()
    convs = [ConversationState(i, r["priority"], r["waiting_since"], r["team_id"], r["language"], r["status"],
                               r["assignee_id"], group=capacity_group(kind_of[r["channel_id"]]),
                               skills=frozenset(r["skills"] or ()), widened=r["skills_widened_at"] is not None,
                               needs_routing=r["needs_routing"])
             for i, r in zip(ids, rows, strict=True)]
    return pool, convs


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sql_forms_select_and_order_as_the_rules(store_engine: Engine, seed: int) -> None:
    engine = store_engine
    pool, convs = _random_world(engine, random.Random(seed))
    expected_queue = [conv.id for conv in queue(convs)]
    assert any(conv.waiting_since is None for conv in queue(convs))  # the world has what is tested
    assert any(conv.skills and not conv.widened for conv in queue(convs))
    with engine.connect() as conn:
        assert conn.execute(select(agents.c.id).where(AVAILABLE).order_by(agents.c.id)).scalars().all() == [
            a.id for a in pool if available(a)]
        assert conn.execute(select(conversations.c.id).where(IN_QUEUE).order_by(*QUEUE_ORDER)
                            ).scalars().all() == expected_queue
        some = False
        for agent in pool:
            for group in (None, *GROUPS):
                theirs = [conv.id for conv in queue(convs)
                          if pullable(conv) and fits(agent, conv) and group in (None, conv.group)]
                some = some or any(convs_by_id_skills(convs, theirs))
                for limit in (1, 4, 1000):
                    pulled = conn.execute(queue_for_agent(agent.id, limit, skills=agent.skills, group=group)
                                          ).scalars().all()
                    assert pulled == theirs[:limit], (agent, group, limit)
        assert some  # conversations asking for skills were pulled by agents who have them
        assert any(conv.needs_routing for conv in queue(convs))  # and some waiting for routing were not


def convs_by_id_skills(convs: list[ConversationState], ids: list[int]) -> list[bool]:
    wanted = set(ids)
    return [bool(conv.skills) and not conv.widened for conv in convs if conv.id in wanted]


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_fill_agent_pulls_what_the_rules_pick(store_engine: Engine, seed: int) -> None:
    """Each agent in turn pulls from the queue: exactly the conversations of the queue, in its
    order, that it may take while it has room in all and in their capacity group (team defaults
    under the agent's own); agents without room (over a group's capacity by hand) pull nothing of it."""
    engine = store_engine
    pool, convs = _random_world(engine, random.Random(seed))
    by_id = {conv.id: conv for conv in convs}
    pulled_any = capped = False
    for agent in pool:
        mirror = copy.deepcopy(agent)
        expected = []
        for conv in filter(pullable, queue(by_id.values())):
            if eligible(mirror, conv):
                expected.append(conv.id)
                mirror.active_count += 1
                mirror.loads[conv.group] = mirror.loads.get(conv.group, 0) + 1
            elif available(mirror) and fits(mirror, conv):
                capped = True  # a group full while the total has room
        assert fill_agent(engine, agent.id) == expected, agent
        pulled_any = pulled_any or bool(expected)
        for conv_id in expected:  # now assigned: out of the queue
            by_id[conv_id] = ConversationState(conv_id, by_id[conv_id].priority, by_id[conv_id].waiting_since,
                                               by_id[conv_id].team_id, by_id[conv_id].language, "open", agent.id)
    assert pulled_any and capped
    with engine.connect() as conn:
        held = dict(conn.execute(select(conversations.c.id, conversations.c.assignee_id)).all())
    assert held == {conv.id: conv.assignee_id for conv in by_id.values()}


@pytest.mark.parametrize("seed", [7, 8])
def test_queue_place_counts_as_the_rule(store_engine: Engine, seed: int) -> None:
    """The SQL count of those ahead (store.queue_view.ahead_of) + 1 is router.waits.position for
    every conversation in the queue, over ties of priority and waiting time, teams and groups."""
    from router.waits import position
    from store.queue_view import ahead_of

    engine = store_engine
    _pool, convs = _random_world(engine, random.Random(seed))
    queued = [conv for conv in convs if conv.status == "open" and conv.assignee_id is None]
    assert len(queued) > 50
    with engine.connect() as conn:
        for conv in queued:
            count = conn.execute(select(func.count()).select_from(
                conversations.join(channels, channels.c.id == conversations.c.channel_id))
                .where(ahead_of(conv))).scalar_one()
            assert count + 1 == position(conv, convs), conv
    assert max(position(conv, convs) or 0 for conv in queued) > 5  # long enough lines were checked
