"""Assigning conversations to agents, with capacity checked and taken in one transaction.

Every function here moves ``agents.active_count`` together with the assignment it counts, with
conditional updates (``... WHERE active_count < capacity``), so concurrent workers can never push an
agent over capacity, on PostgreSQL (row locks) as on SQLite (one writer at a time). Routing
(``store.assignment_batch``) locks the eligible agents' rows up front, in id order, and picks in
memory; the conditional updates here wait for those locks and then re-check.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import Connection, Engine, exists, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from store.models import utcnow
from store.sql import agent_languages, agent_teams, agents, assignments, conversations

a = agents.c
c = conversations.c

class ConcurrentChange(Exception):
    """Another writer changed the row between our look and our write."""


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    conversation_id: int
    agent_id: int | None  # None: nobody eligible, the conversation waits in the queue
    skipped: str | None = None  # why nothing was done (already assigned, resolved, missing)


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
