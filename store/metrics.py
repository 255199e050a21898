"""Read-only figures for monitoring (``GET /metrics``), computed from the database at scrape time so
that every web process answers the same.

Each query is bounded: the queue and the jobs due are read through their partial indexes, the
latencies over a recent window of primary keys, and message totals are counted once up to a settled
id (``MessageTotals``) and afterwards only past it. Replies by status are counted over the recent
messages only; those still to send, however old, through the delivery index.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, func, literal_column, select

from store.models import utcnow
from store.sql import assignments, channels, conversations, messages

c, m, ch, a = conversations.c, messages.c, channels.c, assignments.c


@dataclass(frozen=True, slots=True)
class Queue:
    """Conversations of one channel waiting for an agent (open, unassigned)."""

    channel_id: int
    depth: int
    oldest: datetime | None  # the longest waiting_since among them
    given_up: int  # routing gave up on them (its error kept for an admin)


@dataclass(frozen=True, slots=True)
class Channel:
    id: int
    kind: str
    enabled: bool
    status: str  # ok | error
    error_count: int


@dataclass(frozen=True, slots=True)
class Routing:
    """Conversations whose routing job is due, and those among them whose last attempt failed."""

    due: int
    failing: int


def queue(conn: Connection) -> list[Queue]:
    """The queue by channel (through the queue's partial index)."""
    waiting = (c.status == "open") & c.assignee_id.is_(None)
    rows = conn.execute(
        select(c.channel_id, func.count(), func.min(c.waiting_since), func.count(c.route_error))
        .where(waiting)
        .group_by(c.channel_id)
    ).all()
    return [Queue(row[0], row[1], row[2], row[3]) for row in rows]


def routing(conn: Connection) -> Routing:
    """Routing jobs due (through the partial index of conversations needing routing)."""
    row = conn.execute(select(func.count(), func.count(c.route_error)).where(c.needs_routing.is_(True))).one()
    return Routing(row[0], row[1])


def channel_states(conn: Connection) -> list[Channel]:
    rows = conn.execute(select(ch.id, ch.kind, ch.enabled, ch.status, ch.error_count).order_by(ch.id)).all()
    return [Channel(*row) for row in rows]


def reply_statuses(conn: Connection, *, window: int = 50_000) -> dict[tuple[int, str], int]:
    """Replies (outbound messages, private notes left out) by (channel id, status), among the last
    ``window`` messages: a bounded read of the primary key, where all the replies would be a scan."""
    last = conn.execute(select(func.max(m.id))).scalar()
    if last is None:
        return {}
    rows = conn.execute(
        select(m.channel_id, m.status, func.count())
        .where(m.id > last - window, m.direction == "out", m.private.is_(False))
        .group_by(m.channel_id, m.status)
    ).all()
    return {(row[0], row[1]): row[2] for row in rows}


@dataclass(frozen=True, slots=True)
class Backlog:
    """Replies of one channel still to send (pending or being sent), however old."""

    channel_id: int
    count: int
    oldest: datetime | None


def delivery_backlog(conn: Connection) -> list[Backlog]:
    """Replies still to send, by channel (the predicate is the delivery partial index's own)."""
    rows = conn.execute(
        select(m.channel_id, func.count(), func.min(m.created_at))
        .where(m.direction == "out", m.status.in_(("pending", "sending")))
        .group_by(m.channel_id)
    ).all()
    return [Backlog(*row) for row in rows]


def routing_latencies(conn: Connection, *, window: int = 1000) -> list[float]:
    """Seconds from waiting_since to the router's assignment, for the router's assignments among
    the last ``window`` (conversations answered since have no waiting_since and are left out)."""
    last = conn.execute(select(func.max(a.id))).scalar()
    if last is None:
        return []
    rows = conn.execute(
        select(a.created_at, c.waiting_since)
        .join(conversations, c.id == a.conversation_id)
        .where(a.id > last - window, a.reason.in_(("routed", "pulled")), c.waiting_since.is_not(None))
    ).all()
    return [max(0.0, (done - since).total_seconds()) for done, since in rows if since <= done]


def delivery_latencies(conn: Connection, *, window: int = 20_000) -> list[float]:
    """Seconds from a reply's creation to its sending, for the replies among the last ``window``
    messages that were sent."""
    last = conn.execute(select(func.max(m.id))).scalar()
    if last is None:
        return []
    rows = conn.execute(
        select(m.created_at, m.sent_at).where(m.id > last - window, m.direction == "out", m.sent_at.is_not(None),
                                              m.private.is_(False))
    ).all()
    return [max(0.0, (sent - created).total_seconds()) for created, sent in rows]


class MessageTotals:
    """Messages stored by (channel id, direction) since the beginning, counted incrementally.

    The rows up to a settled id are counted once and kept; each call counts only the rows past it.
    An id is settled once it and every row below it are older than ``settle`` seconds: a transaction
    still open may commit a lower id after a higher one was seen, so the recent tail is counted
    afresh every time. Messages are never deleted, so the totals only grow (Prometheus counters)."""

    def __init__(self, settle: float = 300.0) -> None:
        self.settle = settle
        self._lock = threading.Lock()
        self._settled_id = 0
        self._settled: dict[tuple[int, str], int] = {}

    def count(self, engine: Engine) -> dict[tuple[int, str], int]:
        with self._lock, engine.connect() as conn:
            cutoff = utcnow() - timedelta(seconds=self.settle)
            after = self._settled_id
            newest_young = conn.execute(select(func.min(m.id)).where(m.id > after, m.created_at >= cutoff)).scalar()
            settle_to = conn.execute(
                select(func.max(m.id)).where(m.id > after, *([m.id < newest_young] if newest_young else []))
            ).scalar()
            # The bound inline (an int): PostgreSQL groups by the same expression only if it reads the same.
            settled_row = m.id <= literal_column(str(int(settle_to or after)))
            rows = conn.execute(
                select(m.channel_id, m.direction, settled_row, func.count())
                .where(m.id > after)
                .group_by(m.channel_id, m.direction, settled_row)
            ).all()
            totals = dict(self._settled)
            for channel_id, direction, settled, n in rows:
                key = (channel_id, direction)
                totals[key] = totals.get(key, 0) + n
                if settled:
                    self._settled[key] = self._settled.get(key, 0) + n
            if settle_to:
                self._settled_id = settle_to
            return totals
