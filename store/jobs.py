"""What is still to do, according to the store, and how often each job has been tried.

The broker is only a doorbell: a job it loses is found again here by the sweep. Each job counts
its attempts in the row it works on *before* working, so a job that keeps killing its worker is
counted too, and stops after ``max_attempts`` with its error kept for an admin.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from sqlalchemy import Engine, or_, select, update

from store.models import utcnow
from store.sql import agents, channels, clean, conversations, messages

c = conversations.c
m = messages.c


def begin_route_attempt(engine: Engine, conversation_id: int, max_attempts: int) -> bool:
    """Count one more routing attempt; False when the conversation needs none or has used them
    all (it is then marked with its last error and left in the queue for a person)."""
    with engine.begin() as conn:
        row = conn.execute(
            update(conversations)
            .where(c.id == conversation_id, c.needs_routing.is_(True))
            .values(route_attempts=c.route_attempts + 1, updated_at=utcnow())
            .returning(c.route_attempts, c.route_error)
        ).first()
        if row is None:
            return False
        if row.route_attempts > max_attempts:
            conn.execute(
                update(conversations)
                .where(c.id == conversation_id)
                .values(needs_routing=False,
                        route_error=f"gave up after {max_attempts} attempts: {row.route_error or 'worker died'}")
            )
            return False
        return True


def route_error(engine: Engine, conversation_id: int, error: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(conversations).where(c.id == conversation_id).values(route_error=clean(error)[:2000]))


@dataclasses.dataclass(frozen=True, slots=True)
class DueWork:
    route: list[int]
    deliver: list[int]
    pull: list[int]  # agents with spare capacity while conversations wait
    poll: list[int]  # pull channels whose next poll is due


def due_work(engine: Engine, *, grace: float, limit: int = 1000) -> DueWork:
    """Everything the store says should have happened by now and has not."""
    now = utcnow()
    stale = now - timedelta(seconds=grace)
    with engine.connect() as conn:
        route = conn.execute(
            select(c.id).where(c.needs_routing.is_(True), c.updated_at < stale).order_by(c.id).limit(limit)
        ).scalars().all()
        deliver = conn.execute(
            select(m.id)
            .where(
                m.direction == "out",
                or_(
                    (m.status == "pending") & or_(m.next_attempt_at.is_(None), m.next_attempt_at <= now)
                    & (m.created_at < stale),
                    (m.status == "sending") & (m.lease_until < now),
                ),
            )
            .order_by(m.id)
            .limit(limit)
        ).scalars().all()
        waiting = conn.execute(
            select(c.id).where(c.status == "open", c.assignee_id.is_(None), c.needs_routing.is_(False)).limit(1)
        ).first()
        pull = []
        if waiting is not None:
            a = agents.c
            pull = conn.execute(
                select(a.id).where(a.active.is_(True), a.presence == "online", a.active_count < a.capacity)
            ).scalars().all()
        ch = channels.c
        poll = conn.execute(
            select(ch.id).where(
                ch.enabled.is_(True),
                ch.kind.in_(_pull_kinds()),
                or_(ch.next_poll_at.is_(None), ch.next_poll_at <= now),
                or_(ch.poll_lock_until.is_(None), ch.poll_lock_until < now),
            )
        ).scalars().all()
    return DueWork(list(route), list(deliver), list(pull), list(poll))


def _pull_kinds() -> list[str]:
    from connectors import REGISTRY, connector_class

    kinds = []
    for kind in REGISTRY:
        try:
            if connector_class(kind).capabilities.pull:
                kinds.append(kind)
        except (ImportError, AttributeError):  # a channel whose module is not there yet
            continue
    return kinds
