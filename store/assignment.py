"""Assigning conversations to agents, by hand and as routing decided, and the conversation's
moves that change who holds it (resolve, reopen, changes, snoozes ending).

Every function here moves ``agents.active_count`` together with the assignment it counts, in
one transaction, so concurrent workers can never push an agent over capacity, on PostgreSQL (row
locks) as on SQLite (one writer at a time). All assignments are written by one writer,
``write_assignments``; routing (``store.assignment_batch``) locks the agents' rows up front, in id
order, and the manual paths here lock the same rows in the same order.

A conversation that goes (back) to the queue gets a waiting time if it had none, so it queues
behind those waiting longer, neither ahead of nor after everyone (``router.queue``).

Each move writes its ``conversation.updated`` event (store.events) as the transaction's last
statement; the routing writer does it within its one statement.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update

from store.dialect import for_update, write_picks
from store.events import append, event
from store.models import utcnow
from store.sql import agents, assignments, conversations

a = agents.c
c = conversations.c


class ConcurrentChange(Exception):
    """Another writer changed the row between our look and our write."""


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    conversation_id: int
    agent_id: int | None  # None: nobody eligible, the conversation waits in the queue
    skipped: str | None = None  # why nothing was done (already assigned, resolved, missing)


def write_assignments(conn: Connection, picks: Sequence[tuple[int, int, datetime]], now: datetime, *,
                      reason: str, by: int | None = None, over_capacity: bool = False, announce: bool = True) -> None:
    """Write assignments (conversation id, agent id, at): each agent takes capacity for its
    conversations (never past its capacity unless ``over_capacity``: a person's decision), each
    conversation, still open and unassigned, gets its assignee and stops needing routing, and
    each is logged with ``reason`` and ``by``. The caller holds the rows' locks, so any miss
    means another writer got past them: ConcurrentChange, and the transaction rolls back.
    ``announce``: each conversation gets its ``conversation.updated`` event (else the caller writes it)."""
    if not picks:
        return
    loads: dict[int, tuple[int, datetime]] = {}
    for _, agent_id, at in picks:
        count, last = loads.get(agent_id, (0, at))
        loads[agent_id] = (count + 1, max(last, at))
    got, moved, logged = write_picks(conn, [(ag, n, at) for ag, (n, at) in sorted(loads.items())], picks, now,
                                     reason=reason, by=by, over_capacity=over_capacity, announce=announce)
    if got != len(loads):
        raise ConcurrentChange("an agent changed under its lock")
    if moved != len(picks) or logged != len(picks):
        raise ConcurrentChange("a conversation changed under its lock")


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
    back to the queue). A manual assignment may exceed capacity: it is a person's decision; a
    missing or deactivated agent is refused (LookupError), as is a resolved conversation
    (ValueError). Returns the agent who lost the conversation, if any, whose capacity freed."""
    with engine.begin() as conn:
        look = select(c.status, c.assignee_id).where(c.id == conversation_id)
        row = conn.execute(for_update(conn, look, of=conversations, key_share=True)).first()
        if row is None:
            raise LookupError(f"conversation {conversation_id} does not exist")
        if row.status == "resolved":
            raise ValueError("a resolved conversation cannot be assigned; reopen it first")
        # Both agents' rows (the one losing, the one taking) in id order, as routing locks them:
        # taking them one after the other could deadlock with a batch.
        both = sorted({x for x in (row.assignee_id, agent_id) if x is not None})
        look = select(a.id, a.active).where(a.id.in_(both)).order_by(a.id)
        active = dict(conn.execute(for_update(conn, look, of=agents, key_share=True)).all()) if both else {}
        if agent_id is not None and agent_id not in active:
            raise LookupError(f"agent {agent_id} does not exist")
        if agent_id is not None and not active[agent_id]:
            raise LookupError(f"agent {agent_id} is deactivated and cannot take conversations")
        freed = _release(conn, conversation_id)
        now = utcnow()
        if agent_id is None:  # back to the queue: the router looks for someone
            conn.execute(
                update(conversations).where(c.id == conversation_id)
                .values(needs_routing=True, route_attempts=0, route_error=None, **_queued(now))
            )
            conn.execute(
                assignments.insert().values(
                    conversation_id=conversation_id, agent_id=None, by_agent_id=by, reason="unassigned", created_at=now,
                )
            )
        else:
            write_assignments(conn, [(conversation_id, agent_id, now)], now, reason="manual", by=by,
                              over_capacity=True, announce=False)
        # Addressed to the agent who lost it too (agent_id), who may no longer see it: their inbox drops it.
        append(conn, [event("conversation.updated", conversation_id, at=now, agent_id=freed if freed != agent_id
                            else None, assignee_id=agent_id, reason="manual" if agent_id else "unassigned")])
        return freed if freed != agent_id else None


def _queued(now: datetime) -> dict[str, Any]:
    """The values of a conversation going (back) to the queue: its waiting time, if it had none."""
    return {"waiting_since": func.coalesce(c.waiting_since, now)}


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
        if row is None:
            return None
        if row.assignee_id is not None:
            conn.execute(update(agents).where(a.id == row.assignee_id).values(active_count=a.active_count - 1))
            conn.execute(
                assignments.insert().values(
                    conversation_id=conversation_id, agent_id=row.assignee_id, by_agent_id=by, reason="resolved",
                    created_at=now,
                )
            )
        append(conn, [event("conversation.updated", conversation_id, at=now, status="resolved")])
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
                        open_key=row.thread_key if key_free else None,
                        **(_queued(now) if row.assignee_id is None else {}))
            )
            if row.assignee_id is not None:
                conn.execute(update(agents).where(a.id == row.assignee_id).values(active_count=a.active_count + 1))
            append(conn, [event("conversation.updated", conversation_id, at=now, status="open")])
            return row.assignee_id is None
        if row.status in ("pending", "snoozed"):
            conn.execute(
                update(conversations).where(c.id == conversation_id)
                .values(status="open", snoozed_until=None, updated_at=now,
                        **(_queued(now) if row.assignee_id is None else {}))
            )
            append(conn, [event("conversation.updated", conversation_id, at=now, status="open")])
        return False


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
        if "language" in values:
            values["language"] = values["language"] or None  # an empty language asks for no one in particular
            # Set by a person: detection (router.language) leaves it alone; cleared: detection may set it again.
            values["language_source"] = "manual" if values["language"] else None
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
            values.update(needs_routing=True, route_attempts=0, route_error=None, **_queued(now))
        conn.execute(update(conversations).where(c.id == conversation_id).values(**values))
        shown = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()
                 if k in ("priority", "team_id", "language", "status", "snoozed_until")}
        append(conn, [event("conversation.updated", conversation_id, at=now, **shown)])
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
                update(conversations).where(c.id.in_(unassigned))
                .values(needs_routing=True, route_attempts=0, **_queued(now))
            )
        append(conn, [event("conversation.updated", r.id, at=now, status="open") for r in woken])
    return unassigned
