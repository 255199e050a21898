"""Assigning conversations to agents, with capacity checked and taken in one transaction.

Every function here moves ``agents.active_count`` together with the assignment it counts, with
conditional updates (``... WHERE active_count < capacity``), so concurrent workers can never push an
agent over capacity, on PostgreSQL (row locks) as on SQLite (one writer at a time). Batch routing
(``assign_batch``) instead locks the eligible agents' rows up front, in id order, and picks in
memory; the conditional updates of the other paths wait for those locks and then re-check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, Integer, bindparam, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import ColumnElement

from store.models import utcnow
from store.sql import agent_languages, agent_teams, agents, assignments, conversations, insert_many

a = agents.c
c = conversations.c

class ConcurrentChange(Exception):
    """Another writer changed the row between our look and our write."""


# A policy orders the eligible agents, best first (see router.policies).
Policy = Callable[[], Sequence[ColumnElement[Any]]]


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    conversation_id: int
    agent_id: int | None  # None: nobody eligible, the conversation waits in the queue
    skipped: str | None = None  # why nothing was done (already assigned, resolved, missing)


def _eligible_agents(team_id: int | None, language: str | None) -> list[ColumnElement[bool]]:
    where = [a.active.is_(True), a.presence == "online", a.active_count < a.capacity]
    if team_id is not None:
        where.append(exists().where(agent_teams.c.agent_id == a.id, agent_teams.c.team_id == team_id))
    if language:
        where.append(
            exists().where(agent_languages.c.agent_id == a.id, agent_languages.c.language == language)
        )
    return where


def assign_next_agent(engine: Engine, conversation_id: int, policy: Policy) -> Outcome:
    """Give a waiting conversation to the best eligible agent, or leave it queued."""
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        look = select(c.id, c.status, c.assignee_id, c.team_id, c.language).where(c.id == conversation_id)
        conv = conn.execute(look.with_for_update(of=conversations) if postgres else look).first()
        if conv is None:
            return Outcome(conversation_id, None, skipped="missing")
        if conv.status != "open" or conv.assignee_id is not None:
            _routed(conn, conversation_id)
            return Outcome(conversation_id, conv.assignee_id, skipped=f"{conv.status}, assigned {conv.assignee_id}")
        for _ in range(10):
            # No lock on the look: the take below is a conditional update, which waits for a
            # concurrent take of the same agent and then re-checks the capacity. A loser looks
            # again with a fresh snapshot. Holding at most one agent row at a time, no deadlock.
            query = select(a.id).where(*_eligible_agents(conv.team_id, conv.language)).order_by(*policy()).limit(1)
            agent_id = conn.execute(query).scalar()
            if agent_id is None:
                break
            if _take(conn, conversation_id, agent_id, by=None, reason="routed", check_capacity=True):
                return Outcome(conversation_id, agent_id)
        _routed(conn, conversation_id)
        return Outcome(conversation_id, None)


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


# A policy as a Python sort key over AgentState, best first (see router.policies.SORT_KEYS).
SortKey = Callable[[AgentState], Any]


def assign_batch(engine: Engine, conversation_ids: Sequence[int], key: SortKey) -> list[Outcome]:
    """Route many waiting conversations in one transaction; one Outcome per distinct id, in order.

    The conversations still open, unassigned and needing routing are locked with SKIP LOCKED: a
    conversation another router (or writer) holds is left as it is, still needing routing, for
    that router, a retry or the sweep, so two workers with overlapping batches never wait on or
    double-assign one. The eligible agents are locked in id order (no deadlock between batches,
    and the conditional updates of the one-conversation paths wait for us and then re-check the
    capacity). Picks are made in memory in queue order, each agent's load and last assignment
    updated after every pick. Conversations nobody can take wait in the queue, pulled when
    capacity frees (``pull_for_agent``).

    Statements: one select of the conversations, one of the agents, one each for their teams and
    languages when the batch has team or language constraints, then one update of the assigned
    conversations, one multi-row insert of assignments, one update per agent who got any, and one
    update of the conversations that wait or no longer need routing.
    """
    wanted = list(dict.fromkeys(conversation_ids))
    if not wanted:
        return []
    postgres = engine.dialect.name == "postgresql"
    now = utcnow()
    outcomes: dict[int, Outcome] = {}
    with engine.begin() as conn:
        look = select(c.id, c.status, c.assignee_id, c.team_id, c.language, c.priority, c.waiting_since).where(
            c.id.in_(wanted), c.needs_routing.is_(True)
        )
        if postgres:  # NO KEY UPDATE: not in the way of messages being added to the conversation
            look = look.with_for_update(of=conversations, key_share=True, skip_locked=True)
        rows = conn.execute(look).all()
        done: list[int] = []  # no longer needs routing: taken already, resolved, or waits
        queue = []
        for row in rows:
            if row.status != "open" or row.assignee_id is not None:
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
    """Write a batch's picks; every guard below holds under our locks, and a miss rolls all back.
    One statement a table whatever the batch's size: on PostgreSQL an ``UPDATE ... FROM unnest``
    of the picks, elsewhere one prepared statement executed for each row."""
    taken = [ag for ag in pool if ag.taken]
    agent_rows = {"agent": [ag.id for ag in taken], "taken": [ag.taken for ag in taken],
                  "at": [ag.last_assigned_at for ag in taken]}
    conversation_rows = {"conversation": [conv_id for conv_id, _, _ in picks], "agent": [ag.id for _, ag, _ in picks],
                         "now": now}
    if conn.dialect.name == "postgresql":
        got = conn.execute(_AGENTS_FROM_ARRAYS, agent_rows).rowcount
        moved = conn.execute(_CONVERSATIONS_FROM_ARRAYS, conversation_rows).rowcount
    else:
        got = conn.execute(_AGENTS_BY_ROW, [dict(zip(agent_rows, row, strict=True))
                                            for row in zip(*agent_rows.values(), strict=True)]).rowcount
        moved = conn.execute(_CONVERSATIONS_BY_ROW, [{"conversation": cid, "agent": aid, "now": now} for cid, aid
                                                     in zip(conversation_rows["conversation"],
                                                            conversation_rows["agent"], strict=True)]).rowcount
    if got != len(taken):
        raise ConcurrentChange("an agent changed under its lock")
    if moved != len(picks):
        raise ConcurrentChange("a conversation changed under its lock")
    insert_many(conn, assignments, [{"conversation_id": conv_id, "agent_id": ag.id, "by_agent_id": None,
                                     "reason": "routed", "created_at": stamp} for conv_id, ag, stamp in picks])


def _picks_statements() -> tuple[Any, Any, Any, Any]:
    """The updates of _write_picks, built once."""
    agent_took = func.unnest(
        bindparam("agent", type_=postgresql.ARRAY(Integer)), bindparam("taken", type_=postgresql.ARRAY(Integer)),
        bindparam("at", type_=postgresql.ARRAY(DateTime)),
    ).table_valued("agent", "taken", "at").render_derived("took")
    conversation_to = func.unnest(
        bindparam("conversation", type_=postgresql.ARRAY(Integer)), bindparam("agent", type_=postgresql.ARRAY(Integer)),
    ).table_valued("conversation", "agent").render_derived("picked")
    open_unassigned = [c.status == "open", c.assignee_id.is_(None)]
    agents_from_arrays = (
        update(agents)
        .where(a.id == agent_took.c.agent, a.active_count + agent_took.c.taken <= a.capacity)
        .values(active_count=a.active_count + agent_took.c.taken, last_assigned_at=agent_took.c.at)
    )
    conversations_from_arrays = (
        update(conversations)
        .where(c.id == conversation_to.c.conversation, *open_unassigned)
        .values(assignee_id=conversation_to.c.agent, last_assignee_id=conversation_to.c.agent, needs_routing=False,
                route_error=None, route_attempts=0, updated_at=bindparam("now"))
    )
    agents_by_row = (
        update(agents)
        .where(a.id == bindparam("agent"), a.active_count + bindparam("taken") <= a.capacity)
        .values(active_count=a.active_count + bindparam("taken"), last_assigned_at=bindparam("at"))
    )
    conversations_by_row = (
        update(conversations)
        .where(c.id == bindparam("conversation"), *open_unassigned)
        .values(assignee_id=bindparam("agent"), last_assignee_id=bindparam("agent"), needs_routing=False,
                route_error=None, route_attempts=0, updated_at=bindparam("now"))
    )
    return agents_from_arrays, conversations_from_arrays, agents_by_row, conversations_by_row


_AGENTS_FROM_ARRAYS, _CONVERSATIONS_FROM_ARRAYS, _AGENTS_BY_ROW, _CONVERSATIONS_BY_ROW = _picks_statements()


def pull_for_agent(engine: Engine, agent_id: int, limit: int = 50) -> list[int]:
    """An agent has spare capacity: give them the waiting conversations they may take, highest
    priority first, then longest waiting. Returns the conversation ids assigned."""
    postgres = engine.dialect.name == "postgresql"
    taken: list[int] = []
    while len(taken) < limit:
        with engine.begin() as conn:
            look = select(a.presence, a.active, a.capacity, a.active_count).where(a.id == agent_id)
            agent = conn.execute(look.with_for_update(of=agents) if postgres else look).first()
            if agent is None or not agent.active or agent.presence != "online":
                return taken
            if agent.active_count >= agent.capacity:
                return taken
            query = (
                select(c.id)
                .where(c.status == "open", c.assignee_id.is_(None), *_fits_agent(agent_id))
                .order_by(c.priority.desc(), c.waiting_since.asc(), c.id.asc())
                .limit(1)
            )
            if postgres:
                query = query.with_for_update(skip_locked=True, of=conversations)
            conv_id = conn.execute(query).scalar()
            if conv_id is None or not _take(conn, conv_id, agent_id, by=None, reason="pulled", check_capacity=True):
                return taken
            taken.append(conv_id)
    return taken


def _fits_agent(agent_id: int) -> list[ColumnElement[bool]]:
    """Conversations the agent may take: no team or one of theirs; no language or one they speak."""
    return [
        or_(
            c.team_id.is_(None),
            exists().where(agent_teams.c.agent_id == agent_id, agent_teams.c.team_id == c.team_id),
        ),
        or_(
            c.language.is_(None),
            exists().where(agent_languages.c.agent_id == agent_id, agent_languages.c.language == c.language),
        ),
    ]


def _take(
    conn: Connection, conversation_id: int, agent_id: int, *, by: int | None, reason: str, check_capacity: bool
) -> bool:
    now = utcnow()
    cond = [a.id == agent_id]
    if check_capacity:
        cond += [a.active_count < a.capacity, a.presence == "online"]
    got = conn.execute(
        update(agents).where(*cond).values(active_count=a.active_count + 1, last_assigned_at=now)
    ).rowcount
    if not got:
        return False
    moved = conn.execute(
        update(conversations)
        .where(c.id == conversation_id, c.status == "open", c.assignee_id.is_(None))
        .values(assignee_id=agent_id, last_assignee_id=agent_id, needs_routing=False, route_error=None,
                route_attempts=0, updated_at=now)
    ).rowcount
    if not moved:
        conn.execute(update(agents).where(a.id == agent_id).values(active_count=a.active_count - 1))
        return False
    conn.execute(
        assignments.insert().values(
            conversation_id=conversation_id, agent_id=agent_id, by_agent_id=by, reason=reason, created_at=now
        )
    )
    return True


def _routed(conn: Connection, conversation_id: int) -> None:
    conn.execute(
        update(conversations)
        .where(c.id == conversation_id)
        .values(needs_routing=False, route_attempts=0, route_error=None)
    )


def _release(conn: Connection, conversation_id: int) -> int | None:
    """Unassign an open conversation, giving its agent the capacity back. Returns the agent."""
    prior = conn.execute(
        select(c.assignee_id).where(c.id == conversation_id, c.status != "resolved")
    ).scalar()
    if prior is None:
        return None
    moved = conn.execute(
        update(conversations)
        .where(c.id == conversation_id, c.assignee_id == prior)
        .values(assignee_id=None, updated_at=utcnow())
    ).rowcount
    if not moved:  # someone else changed it meanwhile
        return None
    conn.execute(update(agents).where(a.id == prior).values(active_count=a.active_count - 1))
    return prior


def assign_manually(engine: Engine, conversation_id: int, agent_id: int | None, by: int) -> int | None:
    """An agent or admin (``by``) assigns the conversation to ``agent_id`` (None: unassigns it,
    back to the queue). A manual assignment may exceed capacity: it is a person's decision.
    Returns the agent who lost the conversation, if any, whose capacity freed."""
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        look = select(c.status, c.assignee_id).where(c.id == conversation_id)
        row = conn.execute(look.with_for_update(of=conversations, key_share=True) if postgres else look).first()
        if row is None:
            raise LookupError(f"conversation {conversation_id} does not exist")
        if row.status == "resolved":
            raise ValueError("a resolved conversation cannot be assigned; reopen it first")
        if postgres:
            # Both agents' rows (the one losing, the one taking) in id order, as batch routing
            # locks them: taking them one after the other could deadlock with a batch.
            both = sorted({x for x in (row.assignee_id, agent_id) if x is not None})
            if both:
                conn.execute(
                    select(a.id).where(a.id.in_(both)).order_by(a.id).with_for_update(of=agents, key_share=True)
                ).all()
        freed = _release(conn, conversation_id)
        if agent_id is None:  # back to the queue: the router looks for someone
            conn.execute(
                update(conversations).where(c.id == conversation_id)
                .values(needs_routing=True, route_attempts=0, route_error=None)
            )
            conn.execute(
                assignments.insert().values(
                    conversation_id=conversation_id, agent_id=None, by_agent_id=by, reason="unassigned",
                    created_at=utcnow(),
                )
            )
        elif not _take(conn, conversation_id, agent_id, by=by, reason="manual", check_capacity=False):
            if conn.execute(select(a.id).where(a.id == agent_id, a.active.is_(True))).first() is None:
                raise LookupError(f"agent {agent_id} does not exist")
            raise ConcurrentChange("the conversation changed meanwhile; load it and try again")
        return freed if freed != agent_id else None


def resolve(engine: Engine, conversation_id: int, by: int | None) -> int | None:
    """Resolve a conversation; returns the agent whose capacity freed, if any."""
    now = utcnow()
    with engine.begin() as conn:
        row = conn.execute(
            update(conversations)
            .where(c.id == conversation_id, c.status != "resolved")
            .values(status="resolved", resolved_at=now, open_key=None, needs_routing=False,
                    waiting_since=None, updated_at=now)
            .returning(conversations.c.assignee_id)
        ).first()
        if row is None or row.assignee_id is None:
            return None
        conn.execute(update(agents).where(a.id == row.assignee_id).values(active_count=a.active_count - 1))
        conn.execute(
            assignments.insert().values(
                conversation_id=conversation_id, agent_id=row.assignee_id, by_agent_id=by, reason="resolved",
                created_at=now,
            )
        )
        return row.assignee_id


def reopen(engine: Engine, conversation_id: int) -> bool:
    """An agent reopens a resolved conversation: it keeps its assignee (whose count grows), or
    goes back through the router when it had none. Returns whether it needs routing."""
    now = utcnow()
    with engine.begin() as conn:
        row = conn.execute(
            select(c.status, c.assignee_id, c.thread_key, c.channel_id).where(c.id == conversation_id)
        ).first()
        if row is None:
            raise LookupError(f"conversation {conversation_id} does not exist")
        if row.status == "resolved":
            key_free = row.thread_key is not None and conn.execute(
                select(c.id).where(c.channel_id == row.channel_id, c.open_key == row.thread_key)
            ).first() is None
            conn.execute(
                update(conversations)
                .where(c.id == conversation_id)
                .values(status="open", resolved_at=None, updated_at=now, needs_routing=row.assignee_id is None,
                        open_key=row.thread_key if key_free else None)
            )
            if row.assignee_id is not None:
                conn.execute(update(agents).where(a.id == row.assignee_id).values(active_count=a.active_count + 1))
            return row.assignee_id is None
        if row.status in ("pending", "snoozed"):
            conn.execute(
                update(conversations).where(c.id == conversation_id)
                .values(status="open", snoozed_until=None, updated_at=now)
            )
        return False


def agents_with_room(conn: Connection) -> list[int]:
    return list(
        conn.execute(
            select(a.id).where(a.active.is_(True), a.presence == "online", a.active_count < a.capacity)
        ).scalars()
    )




def update_conversation(
    engine: Engine,
    conversation_id: int,
    changes: dict[str, Any],
) -> bool:
    """Change a conversation's priority, team, language or status (open, pending, snoozed with
    ``snoozed_until``). Returns whether it needs routing: it is open, unassigned, and its team or
    language changed, so the router looks again with the new constraints."""
    now = utcnow()
    with engine.begin() as conn:
        row = conn.execute(
            select(c.status, c.assignee_id, c.team_id, c.language).where(c.id == conversation_id)
        ).first()
        if row is None:
            raise LookupError(f"conversation {conversation_id} does not exist")
        status = changes.get("status")
        if status is not None and row.status == "resolved":
            raise ValueError("a resolved conversation changes status only by reopening it")
        values: dict[str, Any] = {k: v for k, v in changes.items() if k in ("priority", "team_id", "language")}
        if status is not None:
            values["status"] = status
            values["snoozed_until"] = changes.get("snoozed_until") if status == "snoozed" else None
        if not values:
            return False
        values["updated_at"] = now
        rerouted = (
            row.assignee_id is None
            and (status or row.status) == "open"
            and row.status != "resolved"
            and (("team_id" in values and values["team_id"] != row.team_id)
                 or ("language" in values and values["language"] != row.language)
                 or (status == "open" and row.status != "open"))
        )
        if rerouted:
            values.update(needs_routing=True, route_attempts=0, route_error=None)
        conn.execute(update(conversations).where(c.id == conversation_id).values(**values))
        return rerouted


def wake_snoozed(engine: Engine) -> list[int]:
    """Snoozed conversations whose time has come are open again; returns those now unassigned
    (they go back through the router)."""
    now = utcnow()
    with engine.begin() as conn:
        woken = conn.execute(
            update(conversations)
            .where(c.status == "snoozed", c.snoozed_until.is_not(None), c.snoozed_until <= now)
            .values(status="open", snoozed_until=None, updated_at=now)
            .returning(c.id, c.assignee_id)
        ).all()
        unassigned = [r.id for r in woken if r.assignee_id is None]
        if unassigned:
            conn.execute(
                update(conversations).where(c.id.in_(unassigned)).values(needs_routing=True, route_attempts=0)
            )
    return unassigned
