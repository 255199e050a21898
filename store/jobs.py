"""What is still to do, according to the store, and how often each job has been tried.

The broker is only a doorbell: a job it loses is found again here by the sweep. Each job counts
its attempts in the row it works on *before* working, so a job that keeps killing its worker is
counted too, and stops after ``max_attempts`` with its error kept for an admin. (The routing job
that the inbound store rings has its first attempt counted by the store, in the transaction that
stored the message: see ``workers._route``.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Column, ColumnElement, Engine, Table, case, or_, select, update

from store.assignment_batch import AVAILABLE, IN_QUEUE
from store.dialect import for_update, single_statement
from store.models import utcnow
from store.sql import agents, channels, clean, conversations, messages

c = conversations.c
m = messages.c


def begin_route_attempts(engine: Engine, conversation_ids: Sequence[int]) -> list[int]:
    """Count one more routing attempt for each conversation that still needs routing, in one
    statement committed on its own, and return those. The routing transaction gives up on those
    past their attempts (``store.assignment_batch.assign_batch``)."""
    wanted = sorted(set(conversation_ids))
    if not wanted:
        return []
    # Committed before the routing starts, so that a routing that kills its worker is counted.
    with single_statement(engine) as conn:
        # Rows locked in id order (on PostgreSQL): two overlapping batches updating them in
        # whatever order their plans visit the rows could deadlock.
        target = select(c.id).where(c.id.in_(wanted), c.needs_routing.is_(True)).order_by(c.id)
        rows = conn.execute(
            update(conversations)
            .where(c.id.in_(for_update(conn, target, of=conversations, key_share=True)), c.needs_routing.is_(True))
            # Only the counter changes (no indexed column): PostgreSQL can update the row in place.
            .values(route_attempts=c.route_attempts + 1)
            .returning(c.id)
        ).scalars().all()
    return sorted(rows)


def route_error(engine: Engine, conversation_ids: int | Iterable[int], error: str) -> None:
    """Keep why routing failed on the conversations that still need it (an admin reads it once
    they have used all their attempts)."""
    ids = [conversation_ids] if isinstance(conversation_ids, int) else list(conversation_ids)
    if not ids:
        return
    with engine.begin() as conn:
        conn.execute(
            update(conversations)
            .where(c.id.in_(ids), c.needs_routing.is_(True))
            .values(route_error=clean(error)[:2000])
        )


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
    deliver = _lost_replies(engine, now, grace, limit)
    with engine.connect() as conn:
        route = conn.execute(
            select(c.id).where(c.needs_routing.is_(True), c.updated_at < stale).order_by(c.id).limit(limit)
        ).scalars().all()
        waiting = conn.execute(select(c.id).where(IN_QUEUE, c.needs_routing.is_(False)).limit(1)).first()
        pull = []
        if waiting is not None:
            pull = conn.execute(select(agents.c.id).where(AVAILABLE)).scalars().all()
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


LOOK_AGAIN_MAX = 300.0  # seconds: the longest work found waiting waits for the sweep's next look


def _lost_replies(engine: Engine, now: datetime, grace: float, limit: int) -> list[int]:
    """Replies whose deliver job looks lost: pending for ``grace`` past being stored or past the
    retry they were waiting for, or ``sending`` under a lease that ran out (a worker died mid-send).

    Each one returned is marked in ``next_attempt_at`` (:func:`rung_once`): rung at every sweep,
    each ring was one more job in the queue ahead of a reply merely waiting its turn, so that a
    backlog fed itself. The claim ignores the mark; only the sweep reads it."""
    stale = now - timedelta(seconds=grace)
    due = (m.direction == "out") & or_(
        (m.status == "pending") & or_(m.next_attempt_at.is_(None) & (m.created_at < stale), m.next_attempt_at < stale),
        (m.status == "sending") & (m.lease_until < now) & or_(m.next_attempt_at.is_(None), m.next_attempt_at < stale),
    )
    return rung_once(engine, messages, due, since=m.created_at, mark=m.next_attempt_at, now=now, grace=grace,
                     limit=limit)


def rung_once(engine: Engine, table: Table, lost: ColumnElement[bool], *, since: Column[datetime],
              mark: Column[datetime], now: datetime, grace: float, limit: int) -> list[int]:
    """The ids of ``table``'s rows that ``lost`` selects (oldest first, at most ``limit``; on
    PostgreSQL rows another transaction holds are skipped: being claimed or recorded), each marked
    in ``mark`` with when the sweep looks again (:func:`look_again`, from ``since``). The mark is
    written by the statement that decides, with ``lost`` checked again: sweeps at once ring a row once."""
    key = table.c.id
    with engine.begin() as conn:
        found = conn.execute(
            for_update(conn, select(key, since).where(lost).order_by(key).limit(limit), of=table, skip_locked=True)
        ).all()
        if not found:
            return []
        looks = {row[0]: look_again(now, grace, row[1]) for row in found}
        rung = conn.execute(update(table).where(key.in_(list(looks)), lost)
                            .values({mark.name: case(looks, value=key)}).returning(key)).scalars().all()
    return sorted(rung)


def look_again(now: datetime, grace: float, since: datetime) -> datetime:
    """When the sweep looks again at work it has just rung, that has waited since ``since``: after
    half that wait, at least ``grace``, at most LOOK_AGAIN_MAX. Work merely queued behind other work
    is rung O(log wait) times, not at every sweep; work whose job was lost is rung again within half
    its age. (Replies: ``_lost_replies``; files to fetch: ``store.fetches.due``.)"""
    waited = (now - since).total_seconds()
    return now + timedelta(seconds=min(LOOK_AGAIN_MAX, max(grace, waited / 2)))


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
