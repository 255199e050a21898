"""The routing transactions: load and lock what routing decides on, hand it to the router's
decision, write the picks. Two of them: ``assign_batch`` routes conversations that need routing,
``pull_for_agent`` gives an agent with spare capacity conversations from the queue.

The decisions (who may take what, the queue's order, the policy's pick) are the router's
(``router.eligibility``, ``router.queue``, ``router.picks``); the store passes them in as a
``Decide`` callable, since the store does not import the router. The SQL below that must filter
or order in the database (the agents who may take work, the queue pulled for one agent) is the
SQL form of those rules, checked against them in tests/router/test_rules_sql.py.

Capacity is checked and taken in the same transaction: the agents' rows are locked (in id order,
so batches never deadlock each other) before the decision and written after it, and the writer
re-checks the capacity. On SQLite the transaction holds the database's write lock instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, Select, Text, and_, exists, func, literal, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from store.assignment import Outcome, write_assignments
from store.dialect import for_update
from store.models import utcnow
from store.sql import agent_languages, agent_teams, agents, conversations

a = agents.c
c = conversations.c


@dataclasses.dataclass(slots=True)
class AgentState:
    """An agent as routing sees it, under its row lock; changed in memory after each pick so the
    next pick in the same transaction sees the load it just got."""

    id: int
    capacity: int
    active_count: int
    last_assigned_at: datetime | None
    presence: str = "online"
    active: bool = True
    teams: set[int] = dataclasses.field(default_factory=set)
    languages: set[str] = dataclasses.field(default_factory=set)


@dataclasses.dataclass(frozen=True, slots=True)
class ConversationState:
    """A conversation as routing sees it, under its row lock."""

    id: int
    priority: int = 0
    waiting_since: datetime | None = None
    team_id: int | None = None
    language: str | None = None
    status: str = "open"
    assignee_id: int | None = None


class Pick(NamedTuple):
    """The router's decision: this agent takes this conversation, as of ``at``."""

    conversation_id: int
    agent_id: int
    at: datetime


# The router's decision over the locked state: (conversations, agents, now) -> picks. It may
# change the agents in memory (their load after each pick); what is written follows the picks.
Decide = Callable[[Sequence[ConversationState], list[AgentState], datetime], list[Pick]]

# The SQL forms of the router's rules (router.eligibility.available, router.queue.in_queue,
# router.queue.queue_key, router.eligibility.fits), tested against them on both databases.
AVAILABLE: ColumnElement[bool] = and_(a.active.is_(True), a.presence == "online", a.active_count < a.capacity)
IN_QUEUE: ColumnElement[bool] = and_(c.status == "open", c.assignee_id.is_(None))
# NULLS LAST spelt out: SQLite puts NULL first by default, PostgreSQL last.
QUEUE_ORDER = (c.priority.desc(), c.waiting_since.asc().nulls_last(), c.id.asc())
_STATE = (c.id, c.priority, c.waiting_since, c.team_id, c.language, c.status, c.assignee_id)


def fits_agent(agent_id: int) -> list[ColumnElement[bool]]:
    """Conversations the agent may take: no team or one of theirs; no language or one they speak."""
    return [
        or_(c.team_id.is_(None),
            exists().where(agent_teams.c.agent_id == agent_id, agent_teams.c.team_id == c.team_id)),
        or_(c.language.is_(None), c.language == "",
            exists().where(agent_languages.c.agent_id == agent_id, agent_languages.c.language == c.language)),
    ]


def queue_for_agent(agent_id: int, limit: int) -> Select[Any]:
    """The first ``limit`` conversations of the queue that the agent may take, in queue order."""
    return select(*_STATE).where(IN_QUEUE, *fits_agent(agent_id)).order_by(*QUEUE_ORDER).limit(limit)


def assign_batch(engine: Engine, conversation_ids: Sequence[int], decide: Decide,
                 max_attempts: int | None = None) -> list[Outcome]:
    """Route many waiting conversations in one transaction; one Outcome per distinct id, in order.

    A conversation whose routing has been attempted more than ``max_attempts`` times (counted
    before each attempt, see ``store.jobs``) is not routed again: it stops needing routing and
    keeps its last error, prefixed with "gave up after N attempts", for an admin; it stays in the
    queue, where a person can assign it.

    The conversations still needing routing are locked with SKIP LOCKED: one another router (or
    writer) holds is left as it is, still needing routing, for that router, a retry or the sweep,
    so two workers with overlapping batches never wait on or double-assign one. The available
    agents are locked in id order, then ``decide`` picks. Every conversation loaded and not
    picked (taken already, resolved, or nobody may take it now) no longer needs routing: those
    open and unassigned wait in the queue, pulled when capacity frees (``pull_for_agent``).

    Statements: one select of the conversations, one of the agents, one each for their teams and
    languages when the batch has team or language constraints, one writing the picks (on
    PostgreSQL), one update of those that no longer need routing (and one of those given up).
    """
    wanted = list(dict.fromkeys(conversation_ids))
    if not wanted:
        return []
    now = utcnow()
    outcomes: dict[int, Outcome] = {}
    with engine.begin() as conn:
        look = (select(*_STATE, c.route_attempts, IN_QUEUE.label("queued"))
                .where(c.id.in_(wanted), c.needs_routing.is_(True)))
        rows = conn.execute(for_update(conn, look, of=conversations, key_share=True, skip_locked=True)).all()
        gave_up = f"gave up after {max_attempts} attempts"
        spent = [r.id for r in rows if max_attempts is not None and r.route_attempts > max_attempts]
        states = [_state(r) for r in rows if r.id not in spent]
        away = {r.id for r in rows if not r.queued}  # taken already, or no longer open
        picks: list[Pick] = []
        if any(s.id not in away for s in states):  # some wait for an agent
            pool = _lock_agents(conn, AVAILABLE)
            _load_skills(conn, pool, states)
            picks = decide(states, pool, now) if pool else []
            write_assignments(conn, picks, now, reason="routed")
        outcomes.update((p.conversation_id, Outcome(p.conversation_id, p.agent_id)) for p in picks)
        outcomes.update((cid, Outcome(cid, None, skipped=gave_up)) for cid in spent)
        for s in states:
            if s.id not in outcomes:  # waits in the queue, or was not routing's to do
                why = f"{s.status}, assigned {s.assignee_id}" if s.id in away else None
                outcomes[s.id] = Outcome(s.id, s.assignee_id, why)
        done = [s.id for s in states if outcomes[s.id].agent_id is None or outcomes[s.id].skipped]
        if done:
            conn.execute(update(conversations).where(c.id.in_(done))
                         .values(needs_routing=False, route_attempts=0, route_error=None))
        if spent:
            last = func.coalesce(c.route_error, "worker died")
            conn.execute(update(conversations).where(c.id.in_(spent))
                         .values(needs_routing=False, route_error=literal(f"{gave_up}: ", Text) + last))
    missing = "not waiting for routing, or another router has it"
    return [outcomes.get(cid) or Outcome(cid, None, skipped=missing) for cid in wanted]


def pull_for_agent(engine: Engine, agent_id: int, decide: Decide, limit: int = 50) -> list[int]:
    """An agent may have spare capacity: give them waiting conversations from the queue, as many
    as their room (at most ``limit``), as ``decide`` picks among the first of the queue they may
    take. Returns the conversation ids assigned. One transaction: the agent locked, the queue's
    first rows locked with SKIP LOCKED (those a router holds are left to it), the picks written."""
    now = utcnow()
    with engine.begin() as conn:
        pool = _lock_agents(conn, and_(AVAILABLE, a.id == agent_id))
        if not pool:
            return []
        room = min(limit, pool[0].capacity - pool[0].active_count)
        look = for_update(conn, queue_for_agent(agent_id, room), of=conversations, key_share=True, skip_locked=True)
        states = [_state(r) for r in conn.execute(look)]
        if not states:
            return []
        _load_skills(conn, pool, states)
        picks = decide(states, pool, now)
        write_assignments(conn, picks, now, reason="pulled")
    return [p.conversation_id for p in picks]


def _state(row: Any) -> ConversationState:
    return ConversationState(row.id, row.priority or 0, row.waiting_since, row.team_id, row.language, row.status,
                             row.assignee_id)


def _lock_agents(conn: Connection, where: ColumnElement[bool]) -> list[AgentState]:
    look = select(a.id, a.capacity, a.active_count, a.last_assigned_at, a.presence, a.active).where(where)
    look = for_update(conn, look.order_by(a.id), of=agents, key_share=True)
    return [AgentState(r.id, r.capacity, r.active_count, r.last_assigned_at, r.presence, r.active)
            for r in conn.execute(look)]


def _load_skills(conn: Connection, pool: list[AgentState], states: Sequence[ConversationState]) -> None:
    """The agents' teams and languages, each read only when a conversation asks for one."""
    by_id = {ag.id: ag for ag in pool}
    if by_id and any(s.team_id is not None for s in states):
        query = select(agent_teams.c.agent_id, agent_teams.c.team_id).where(agent_teams.c.agent_id.in_(by_id))
        for agent_id, team_id in conn.execute(query):
            by_id[agent_id].teams.add(team_id)
    if by_id and any(s.language for s in states):
        query = select(agent_languages.c.agent_id, agent_languages.c.language).where(
            agent_languages.c.agent_id.in_(by_id))
        for agent_id, language in conn.execute(query):
            by_id[agent_id].languages.add(language)
