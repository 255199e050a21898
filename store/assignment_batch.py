"""Routing a batch of conversations in one transaction: the batch's conversations locked (those
another router holds are skipped), the eligible agents locked once in id order, picks made in
memory by the policy's sort key as one-at-a-time routing would make them, and written with one
statement (on PostgreSQL; elsewhere one a table). The one-conversation paths of store.assignment
wait for these row locks and then re-check the capacity, so the two never over-assign an agent
together."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Text, bindparam, func, literal, select, text, update

from store.assignment import ConcurrentChange, Outcome
from store.models import utcnow
from store.sql import agent_languages, agent_teams, agents, assignments, conversations, insert_many

a = agents.c
c = conversations.c


@dataclasses.dataclass(slots=True)
class AgentState:
    """An eligible agent as batch routing sees it, under its row lock; changed in memory after
    each pick so the next pick in the same batch sees the load it just got."""

    id: int
    capacity: int
    active_count: int
    last_assigned_at: datetime | None
    teams: set[int] = dataclasses.field(default_factory=set)
    languages: set[str] = dataclasses.field(default_factory=set)
    taken: int = 0  # conversations given to this agent in this batch


# A policy: a sort key over AgentState, best first (see router.policies).
SortKey = Callable[[AgentState], Any]


def assign_batch(engine: Engine, conversation_ids: Sequence[int], key: SortKey,
                 max_attempts: int | None = None) -> list[Outcome]:
    """Route many waiting conversations in one transaction; one Outcome per distinct id, in order.

    A conversation whose routing has been attempted more than ``max_attempts`` times (counted
    before each attempt, see ``store.jobs``) is not routed again: it stops needing routing and
    keeps its last error, prefixed with "gave up after N attempts", for an admin; it stays in the
    queue, where a person can assign it.

    The conversations still open, unassigned and needing routing are locked with SKIP LOCKED: a
    conversation another router (or writer) holds is left as it is, still needing routing, for
    that router, a retry or the sweep, so two workers with overlapping batches never wait on or
    double-assign one. The eligible agents are locked in id order (no deadlock between batches,
    and the conditional updates of the one-conversation paths wait for us and then re-check the
    capacity). Picks are made in memory in queue order, each agent's load and last assignment
    updated after every pick. Conversations nobody can take wait in the queue, pulled when
    capacity frees (``pull_for_agent``).

    Statements: one select of the conversations, one of the agents, one each for their teams and
    languages when the batch has team or language constraints, then one writing the picks (the
    agents' loads, the conversations' assignees, the assignment history), and one
    update of the conversations that wait or no longer need routing (and one of those given up).
    """
    wanted = list(dict.fromkeys(conversation_ids))
    if not wanted:
        return []
    postgres = engine.dialect.name == "postgresql"
    now = utcnow()
    outcomes: dict[int, Outcome] = {}
    with engine.begin() as conn:
        look = select(c.id, c.status, c.assignee_id, c.team_id, c.language, c.priority, c.waiting_since,
                      c.route_attempts).where(c.id.in_(wanted), c.needs_routing.is_(True))
        if postgres:  # NO KEY UPDATE: not in the way of messages being added to the conversation
            look = look.with_for_update(of=conversations, key_share=True, skip_locked=True)
        rows = conn.execute(look).all()
        done: list[int] = []  # no longer needs routing: taken already, resolved, or waits
        queue = []
        spent: list[int] = []
        gave_up = f"gave up after {max_attempts} attempts"
        for row in rows:
            if max_attempts is not None and row.route_attempts > max_attempts:
                outcomes[row.id] = Outcome(row.id, None, skipped=gave_up)
                spent.append(row.id)
            elif row.status != "open" or row.assignee_id is not None:
                outcomes[row.id] = Outcome(row.id, row.assignee_id, skipped=f"{row.status}, assigned {row.assignee_id}")
                done.append(row.id)
            else:
                queue.append(row)
        queue.sort(key=_queue_order)
        picks: list[tuple[int, AgentState, datetime]] = []
        if queue:
            pool = _lock_agents(conn, postgres, teams=any(r.team_id is not None for r in queue),
                                languages=any(r.language for r in queue))
            room = sum(ag.capacity - ag.active_count for ag in pool)
            for row in queue:
                fits = [] if room <= 0 else [
                    ag for ag in pool
                    if ag.active_count < ag.capacity
                    and (row.team_id is None or row.team_id in ag.teams)
                    and (not row.language or row.language in ag.languages)
                ]
                if not fits:
                    outcomes[row.id] = Outcome(row.id, None)
                    done.append(row.id)
                    continue
                best = min(fits, key=key)
                # One microsecond apart: agents picked earlier in the batch count as idle longer,
                # as they would have one conversation at a time.
                stamp = now + timedelta(microseconds=len(picks))
                best.active_count += 1
                best.taken += 1
                best.last_assigned_at = stamp
                room -= 1
                picks.append((row.id, best, stamp))
                outcomes[row.id] = Outcome(row.id, best.id)
            if picks:
                _write_picks(conn, picks, pool, now)
        if done:
            conn.execute(
                update(conversations)
                .where(c.id.in_(done))
                .values(needs_routing=False, route_attempts=0, route_error=None)
            )
        if spent:
            last = func.coalesce(c.route_error, "worker died")
            conn.execute(
                update(conversations)
                .where(c.id.in_(spent))
                .values(needs_routing=False,
                        route_error=literal(f"{gave_up}: ", Text) + last)
            )
    missing = "not waiting for routing, or another router has it"
    return [outcomes.get(cid) or Outcome(cid, None, skipped=missing) for cid in wanted]


def _queue_order(row: Any) -> tuple[int, bool, datetime, int]:
    """Highest priority first, then longest waiting (no waiting time last), then oldest id."""
    return (-(row.priority or 0), row.waiting_since is None, row.waiting_since or datetime.min, row.id)


def _lock_agents(conn: Connection, postgres: bool, *, teams: bool, languages: bool) -> list[AgentState]:
    look = (
        select(a.id, a.capacity, a.active_count, a.last_assigned_at)
        .where(a.active.is_(True), a.presence == "online", a.active_count < a.capacity)
        .order_by(a.id)
    )
    if postgres:
        look = look.with_for_update(of=agents, key_share=True)
    pool = [AgentState(r.id, r.capacity, r.active_count, r.last_assigned_at) for r in conn.execute(look)]
    by_id = {ag.id: ag for ag in pool}
    if by_id and teams:
        query = select(agent_teams.c.agent_id, agent_teams.c.team_id).where(agent_teams.c.agent_id.in_(by_id))
        for agent_id, team_id in conn.execute(query):
            by_id[agent_id].teams.add(team_id)
    if by_id and languages:
        query = select(agent_languages.c.agent_id, agent_languages.c.language).where(
            agent_languages.c.agent_id.in_(by_id)
        )
        for agent_id, language in conn.execute(query):
            by_id[agent_id].languages.add(language)
    return pool


def _write_picks(
    conn: Connection, picks: list[tuple[int, AgentState, datetime]], pool: list[AgentState], now: datetime
) -> None:
    """Write a batch's picks: the agents' loads, the conversations' assignees and the assignment
    history. Every guard below holds under our locks, and a miss rolls all back. On PostgreSQL
    one statement whatever the batch's size (the three writes as CTEs over arrays of the picks);
    elsewhere one prepared statement a table, executed for each row."""
    taken = [ag for ag in pool if ag.taken]
    if conn.dialect.name == "postgresql":
        got, moved, logged = conn.execute(_PICKS, {
            "agent": [ag.id for ag in taken], "taken": [ag.taken for ag in taken],
            "at": [ag.last_assigned_at for ag in taken], "conversation": [conv_id for conv_id, _, _ in picks],
            "assignee": [ag.id for _, ag, _ in picks], "stamp": [stamp for _, _, stamp in picks], "now": now,
        }).one()
    else:
        got = conn.execute(_AGENTS_BY_ROW, [{"agent": ag.id, "taken": ag.taken, "at": ag.last_assigned_at}
                                            for ag in taken]).rowcount
        moved = conn.execute(_CONVERSATIONS_BY_ROW, [{"conversation": conv_id, "agent": ag.id, "now": now}
                                                     for conv_id, ag, _ in picks]).rowcount
        logged = len(insert_many(conn, assignments, [
            {"conversation_id": conv_id, "agent_id": ag.id, "by_agent_id": None, "reason": "routed",
             "created_at": stamp} for conv_id, ag, stamp in picks], returning=("id",)))
    if got != len(taken):
        raise ConcurrentChange("an agent changed under its lock")
    if moved != len(picks) or logged != len(picks):
        raise ConcurrentChange("a conversation changed under its lock")


# The three writes of a batch's picks in one statement (PostgreSQL). The CTEs see one snapshot
# and touch different tables; the assignments are logged for the conversations actually moved.
_PICKS = text("""
WITH took AS (
  UPDATE agents SET active_count = agents.active_count + t.taken, last_assigned_at = t.at
  FROM unnest(CAST(:agent AS integer[]), CAST(:taken AS integer[]), CAST(:at AS timestamp[])) AS t(agent, taken, at)
  WHERE agents.id = t.agent AND agents.active_count + t.taken <= agents.capacity
  RETURNING agents.id
), moved AS (
  UPDATE conversations SET assignee_id = p.agent, last_assignee_id = p.agent, needs_routing = false,
                           route_error = NULL, route_attempts = 0, updated_at = CAST(:now AS timestamp)
  FROM unnest(CAST(:conversation AS integer[]), CAST(:assignee AS integer[]), CAST(:stamp AS timestamp[]))
       AS p(conversation, agent, stamp)
  WHERE conversations.id = p.conversation AND conversations.status = 'open' AND conversations.assignee_id IS NULL
  RETURNING conversations.id, p.agent, p.stamp
), logged AS (
  INSERT INTO assignments (conversation_id, agent_id, reason, created_at)
  SELECT id, agent, 'routed', stamp FROM moved
  RETURNING id
)
SELECT (SELECT count(*) FROM took), (SELECT count(*) FROM moved), (SELECT count(*) FROM logged)
""")

_OPEN_UNASSIGNED = [c.status == "open", c.assignee_id.is_(None)]
_AGENTS_BY_ROW = (
    update(agents)
    .where(a.id == bindparam("agent"), a.active_count + bindparam("taken") <= a.capacity)
    .values(active_count=a.active_count + bindparam("taken"), last_assigned_at=bindparam("at"))
)
_CONVERSATIONS_BY_ROW = (
    update(conversations)
    .where(c.id == bindparam("conversation"), *_OPEN_UNASSIGNED)
    .values(assignee_id=bindparam("agent"), last_assignee_id=bindparam("agent"), needs_routing=False,
            route_error=None, route_attempts=0, updated_at=bindparam("now"))
)
