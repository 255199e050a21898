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
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, Select, Text, and_, case, exists, func, literal, not_, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from connectors import CAPACITY_GROUPS, DEFAULT_GROUP, GROUPS, capacity_group
from store.assignment import Outcome, write_assignments
from store.dialect import for_update, strings_outside
from store.models import utcnow
from store.sql import agent_languages, agent_teams, agents, channels, conversations, teams

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
    skills: set[str] = dataclasses.field(default_factory=set)
    # Per capacity group (connectors.CAPACITY_GROUPS): conversations held now, and the most it
    # may hold (the agent's own, else their team's default; a group missing: only ``capacity``).
    loads: dict[str, int] = dataclasses.field(default_factory=dict)
    capacities: dict[str, int] = dataclasses.field(default_factory=dict)


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
    group: str = DEFAULT_GROUP  # its channel kind's capacity group
    skills: frozenset[str] = frozenset()  # required of its agent, until widened
    widened: bool = False  # waited long enough for a skilled agent: any agent of the team may take it
    policy: str | None = None  # its team's (None: the router's default)
    # Sticky: the agent who last helped this customer, when, and the team's window in seconds.
    previous_agent_id: int | None = None
    previous_at: datetime | None = None
    sticky_seconds: int | None = None
    needs_routing: bool = False  # its routing job has not run yet (nor its automations)


class Pick(NamedTuple):
    """The router's decision: this agent takes this conversation, as of ``at``."""

    conversation_id: int
    agent_id: int
    at: datetime


# The router's decision over the locked state: (conversations, agents, now) -> picks. It may
# change the agents in memory (their load after each pick); what is written follows the picks.
Decide = Callable[[Sequence[ConversationState], list[AgentState], datetime], list[Pick]]

# The SQL forms of the router's rules (router.eligibility.available, router.queue.in_queue,
# router.queue.queue_key, router.eligibility.fits and has_room, connectors.capacity_group),
# tested against them on both databases.
AVAILABLE: ColumnElement[bool] = and_(a.active.is_(True), a.presence == "online", a.active_count < a.capacity)
IN_QUEUE: ColumnElement[bool] = and_(c.status == "open", c.assignee_id.is_(None))
PULLABLE: ColumnElement[bool] = and_(IN_QUEUE, c.needs_routing.is_(False))  # router.queue.pullable
# NULLS LAST spelt out: SQLite puts NULL first by default, PostgreSQL last.
QUEUE_ORDER = (c.priority.desc(), c.waiting_since.asc().nulls_last(), c.id.asc())
GROUP_OF_KIND: ColumnElement[str] = case(CAPACITY_GROUPS, value=channels.c.kind, else_=DEFAULT_GROUP)
STATE = (c.id, c.priority, c.waiting_since, c.team_id, c.language, c.status, c.assignee_id, c.skills,
          c.skills_widened_at, c.contact_id, channels.c.kind, teams.c.policy, teams.c.sticky_seconds, c.needs_routing)
STATE_FROM = conversations.join(channels, channels.c.id == c.channel_id).outerjoin(teams, teams.c.id == c.team_id)


def fits_agent(agent_id: int, skills: Iterable[str] = ()) -> list[ColumnElement[bool]]:
    """Conversations the agent (with ``skills``) may take: no team or one of theirs; no language, one
    they speak, or any when they list none; no skill they lack, unless widened."""
    return [
        or_(c.team_id.is_(None),
            exists().where(agent_teams.c.agent_id == agent_id, agent_teams.c.team_id == c.team_id)),
        or_(c.language.is_(None), c.language == "",
            exists().where(agent_languages.c.agent_id == agent_id, agent_languages.c.language == c.language),
            ~exists().where(agent_languages.c.agent_id == agent_id)),
        or_(c.skills_widened_at.is_not(None), not_(strings_outside(c.skills, sorted(skills)))),
    ]


def queue_for_agent(agent_id: int, limit: int, *, skills: Iterable[str] = (), group: str | None = None
                    ) -> Select[Any]:
    """The first ``limit`` conversations of the queue that the agent may pull (of capacity group
    ``group``, or any), in queue order: ``router.queue.pullable`` and ``fits_agent``."""
    where = [PULLABLE, *fits_agent(agent_id, skills)]
    if group is not None:
        where.append(group == GROUP_OF_KIND)
    return select(*STATE).select_from(STATE_FROM).where(*where).order_by(*QUEUE_ORDER).limit(limit)


# Why a conversation another transaction held (its row, or its automations: ``hold``) was not
# assigned.
HELD = "another transaction held it (its row, or its automations): routed again"


def assign_batch(engine: Engine, conversation_ids: Sequence[int], decide: Decide,
                 max_attempts: int | None = None, *, hold: Collection[int] = ()) -> list[Outcome]:
    """Route many waiting conversations in one transaction; one Outcome per distinct id, in order.

    A conversation whose routing has been attempted more than ``max_attempts`` times (counted
    before each attempt, see ``store.jobs``) is not routed again: it stops needing routing and
    keeps its last error, prefixed with "gave up after N attempts", for an admin; it stays in the
    queue, where a person can assign it.

    The conversations still needing routing are locked with SKIP LOCKED: one another router (or
    writer) holds is left as it is, still needing routing, with :data:`HELD` as its outcome (the
    worker routes it again a moment later), so two workers with overlapping batches never wait
    on or double-assign one. The available agents are locked in id order, then ``decide`` picks.
    Every conversation loaded and not picked (taken already, resolved, or nobody may take it now)
    no longer needs routing: those open and unassigned wait in the queue, pulled when capacity
    frees (``pull_for_agent``).
    Those in ``hold``, whose automations have not run (``store.automation.Automated``), are
    neither picked nor queued: they keep needing routing, with :data:`HELD` as their outcome (those
    past their attempts are given up all the same).

    Statements: one select of the conversations; one of the agents, one each for their teams and
    languages when the batch has team or language constraints, and the teams' default capacities,
    all before the agents' locks; one taking the locks and reading the counts again (and one
    counting loads per group where a group capacity applies); one writing the picks (on
    PostgreSQL), one update of those that no longer need routing (and one of those given up).
    """
    wanted = list(dict.fromkeys(conversation_ids))
    if not wanted:
        return []
    now = utcnow()
    outcomes: dict[int, Outcome] = {}
    with engine.begin() as conn:
        look = (select(*STATE, c.route_attempts, IN_QUEUE.label("queued")).select_from(STATE_FROM)
                .where(c.id.in_(wanted), c.needs_routing.is_(True)))
        rows = conn.execute(for_update(conn, look, of=conversations, key_share=True, skip_locked=True)).all()
        gave_up = f"gave up after {max_attempts} attempts"
        spent = [r.id for r in rows if max_attempts is not None and r.route_attempts > max_attempts]
        waits = {r.id for r in rows if r.id in hold and r.id not in spent} | _locked(conn, wanted, rows)
        states = [conversation_state(r) for r in rows if r.id not in spent and r.id not in waits]
        away = {r.id for r in rows if not r.queued}  # taken already, or no longer open
        picks: list[Pick] = []
        if any(s.id not in away for s in states):  # some wait for an agent
            # What routing reads of the agents besides their counts (teams, languages, skills,
            # capacities, a sticky customer's last agent) is read before their locks are taken: the
            # locks serialise every routing transaction, so they are held for the counts and the
            # writes alone (twice the routings a second with a few conversations each, bench.ingest).
            pool = load_agents(conn, AVAILABLE, lock=False)
            if pool:
                load_skills(conn, pool, states, loads=False)
                states = _load_previous(conn, states, rows)
                pool = lock_agents(conn, pool)
            picks = decide(states, pool, now) if pool else []
            write_assignments(conn, picks, now, reason="routed")
        outcomes.update((p.conversation_id, Outcome(p.conversation_id, p.agent_id)) for p in picks)
        outcomes.update((cid, Outcome(cid, None, skipped=gave_up)) for cid in spent)
        outcomes.update((cid, Outcome(cid, None, skipped=HELD)) for cid in waits)
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
    missing = "not waiting for routing"
    return [outcomes.get(cid) or Outcome(cid, None, skipped=missing) for cid in wanted]


def _locked(conn: Connection, wanted: list[int], rows: Sequence[Any]) -> set[int]:
    """Those of ``wanted`` still needing routing that the lock skipped: another transaction holds
    them for milliseconds (another router, an acknowledgement, the next message being stored).
    Left alone they would wait for the sweep (seconds: bench.inbox saw a batch of 31 wait 13 s),
    so they are :data:`HELD` and routed again a moment later."""
    skipped = set(wanted) - {r.id for r in rows}
    if not skipped:
        return set()
    return set(conn.execute(select(c.id).where(c.id.in_(skipped), c.needs_routing.is_(True))).scalars())


def pull_for_agent(engine: Engine, agent_id: int, decide: Decide, limit: int = 50) -> list[int]:
    """An agent may have spare capacity: give them waiting conversations from the queue, as many
    as their room (at most ``limit``), as ``decide`` picks among the first of the queue they may
    take. Returns the conversation ids assigned. One transaction: the agent locked, the queue's
    first rows of each capacity group locked with SKIP LOCKED (those a router holds are left to
    it), the picks written. ``decide`` keeps to the room of each group."""
    now = utcnow()
    with engine.begin() as conn:
        pool = load_agents(conn, and_(AVAILABLE, a.id == agent_id))
        if not pool:
            return []
        room = min(limit, pool[0].capacity - pool[0].active_count)
        load_skills(conn, pool, [], everything=True)
        rows = []
        for group in GROUPS:  # each group's first ``room``: a superset of what the room may take
            look = queue_for_agent(agent_id, room, skills=pool[0].skills, group=group)
            rows += conn.execute(for_update(conn, look, of=conversations, key_share=True, skip_locked=True)).all()
        if not rows:
            return []
        states = _load_previous(conn, [conversation_state(r) for r in rows], rows)
        picks = decide(states, pool, now)
        write_assignments(conn, picks, now, reason="pulled")
    return [p.conversation_id for p in picks]


def conversation_state(row: Any) -> ConversationState:
    """A row of ``STATE`` columns as routing sees it."""
    return ConversationState(row.id, row.priority or 0, row.waiting_since, row.team_id, row.language, row.status,
                             row.assignee_id, group=capacity_group(row.kind),
                             skills=frozenset(s for s in (row.skills or ()) if isinstance(s, str)),
                             widened=row.skills_widened_at is not None, policy=row.policy,
                             sticky_seconds=row.sticky_seconds, needs_routing=bool(row.needs_routing))


def load_agents(conn: Connection, where: ColumnElement[bool], *, lock: bool = True) -> list[AgentState]:
    """The agents ``where`` says, as routing sees them (their teams, languages, group capacities
    and loads per group come from :func:`load_skills`, which every caller runs next in the same
    transaction); ``lock``: under their row locks, in id order (the only way routing reads them)."""
    look = select(a.id, a.capacity, a.active_count, a.last_assigned_at, a.presence, a.active, a.capacities,
                  a.skills).where(where).order_by(a.id)
    if lock:
        look = for_update(conn, look, of=agents, key_share=True)
    pool = [AgentState(r.id, r.capacity, r.active_count, r.last_assigned_at, r.presence, r.active,
                       skills={s for s in (r.skills or ()) if isinstance(s, str)},
                       capacities=_capacities(r.capacities)) for r in conn.execute(look)]
    return pool


def lock_agents(conn: Connection, pool: list[AgentState]) -> list[AgentState]:
    """``pool`` (read without locks) under the agents' row locks, in id order, their counts read
    again and their loads per group counted: those no longer available are left out."""
    look = for_update(conn, select(a.id, a.capacity, a.active_count, a.last_assigned_at, a.presence, a.active)
                      .where(a.id.in_([ag.id for ag in pool]), AVAILABLE).order_by(a.id), of=agents, key_share=True)
    now = {r.id: r for r in conn.execute(look)}
    locked = []
    for agent in pool:
        row = now.get(agent.id)
        if row is not None:
            locked.append(dataclasses.replace(agent, capacity=row.capacity, active_count=row.active_count,
                                              last_assigned_at=row.last_assigned_at, presence=row.presence,
                                              active=row.active, loads={}))
    count_loads(conn, locked)
    return locked


def _capacities(value: Any) -> dict[str, int]:
    """A stored capacity map, its groups and whole numbers only."""
    if not isinstance(value, dict):
        return {}
    return {g: int(n) for g, n in value.items() if g in GROUPS and isinstance(n, int) and not isinstance(n, bool)}


def _load_previous(conn: Connection, states: list[ConversationState], rows: Sequence[Any]) -> list[ConversationState]:
    """For conversations of sticky teams: the agent who last held another conversation of the same
    customer, and when that conversation last moved (its last message, else its last change)."""
    sticky = {r.id: r.contact_id for r in rows if r.policy == "sticky"}
    if not sticky:
        return states
    when = func.coalesce(c.last_message_at, c.updated_at)
    look = (select(c.contact_id, c.last_assignee_id, when.label("at"))
            .where(c.contact_id.in_(set(sticky.values())), c.id.not_in(list(sticky)), c.last_assignee_id.is_not(None))
            .order_by(when.asc(), c.id.asc()))
    latest = {r.contact_id: (r.last_assignee_id, r.at) for r in conn.execute(look)}  # the last one wins
    out = []
    for state in states:
        found = latest.get(sticky.get(state.id, -1))
        out.append(dataclasses.replace(state, previous_agent_id=found[0], previous_at=found[1]) if found else state)
    return out


def load_skills(conn: Connection, pool: list[AgentState], states: Sequence[ConversationState], *,
                 everything: bool = False, loads: bool = True) -> None:
    """The agents' teams and languages, each read only when a conversation asks for one (or
    ``everything``); their teams' default capacities per group where their own are unset (the
    smallest among their teams); and the load per group of each agent a group capacity applies to.
    For the others every group's capacity is their total, which ``active_count`` already bounds
    (``router.eligibility.available``): counting their conversations on every routing job was most
    of the database's work in a large shop (tens of thousands held), so it is not done."""
    by_id = {ag.id: ag for ag in pool}
    if not by_id:
        return
    defaults = dict(conn.execute(select(teams.c.id, teams.c.capacities).where(teams.c.capacities.is_not(None))).all())
    defaults = {team_id: caps for team_id, caps in ((t, _capacities(v)) for t, v in defaults.items()) if caps}
    if defaults or everything or any(s.team_id is not None for s in states):
        query = select(agent_teams.c.agent_id, agent_teams.c.team_id).where(agent_teams.c.agent_id.in_(by_id))
        for agent_id, team_id in conn.execute(query):
            by_id[agent_id].teams.add(team_id)
    if everything or any(s.language for s in states):
        query = select(agent_languages.c.agent_id, agent_languages.c.language).where(
            agent_languages.c.agent_id.in_(by_id))
        for agent_id, language in conn.execute(query):
            by_id[agent_id].languages.add(language)
    for agent in pool:
        own = agent.capacities
        merged: dict[str, int] = {}
        for team_id in agent.teams & defaults.keys():
            for group, capacity in defaults[team_id].items():
                merged[group] = min(capacity, merged.get(group, capacity))
        agent.capacities = {**merged, **own}
    if loads:
        count_loads(conn, pool)


def count_loads(conn: Connection, pool: list[AgentState]) -> None:
    """The load per group of each agent of ``pool`` a group capacity applies to (under the agents'
    locks when routing: every assignment takes them first)."""
    by_id = {agent.id: agent for agent in pool}
    counted = [agent.id for agent in pool if agent.capacities]
    if counted:
        held = (select(c.assignee_id, channels.c.kind, func.count())
                .select_from(conversations.join(channels, channels.c.id == c.channel_id))
                .where(c.assignee_id.in_(counted), c.status != "resolved")
                .group_by(c.assignee_id, channels.c.kind))
        for agent_id, kind, count in conn.execute(held):
            loads = by_id[agent_id].loads
            loads[capacity_group(kind)] = loads.get(capacity_group(kind), 0) + count
