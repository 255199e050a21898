"""Files the provider holds (``connectors.base.RemoteAttachment``), fetched after their message is
stored: the attachment row is written ``pending`` with the message (no bytes yet, ``ref`` naming
the file for the connector), then the ``fetch_attachment`` job claims it, downloads it and records
``done`` with the bytes or ``failed`` with a reason the agent reads.

A claim is a lease, as for replies (store.outbound): two jobs never fetch one file at once, and a
worker killed mid-download is taken over once the lease runs out (it is renewed while the download
runs). Each claim counts an attempt. Every change of state writes a ``message.updated`` event (the
message's conversation, its id, the attachment's id and state) in the same transaction, so the
inbox shows the file appear.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, or_, select, update

from store.events import append, event
from store.jobs import rung_once
from store.models import utcnow
from store.sql import attachments, clean, messages

f = attachments.c
LEASE = 30.0  # seconds a claim holds a file; renewed while the download runs
EARLY = 1.0  # a job may run this much before the row's next_fetch_at (the broker's delay vs ours)


@dataclasses.dataclass(frozen=True, slots=True)
class FetchClaim:
    attachment_id: int
    message_id: int
    channel_id: int
    ref: str
    attempts: int  # this one included


def claim(engine: Engine, attachment_id: int, *, lease: float = LEASE) -> FetchClaim | None:
    """Take a pending file that is due (and not held by a live lease) for fetching; None when it
    is not ours: fetched, failed, held by another worker, or not due yet."""
    now = utcnow()
    with engine.begin() as conn:
        row = conn.execute(
            update(attachments)
            .where(f.id == attachment_id, f.fetch_state == "pending",
                   or_(f.next_fetch_at.is_(None), f.next_fetch_at <= now + timedelta(seconds=EARLY)),
                   or_(f.lease_until.is_(None), f.lease_until < now))
            .values(lease_until=now + timedelta(seconds=lease), fetch_attempts=f.fetch_attempts + 1)
            .returning(f.message_id, f.ref, f.fetch_attempts)
        ).first()
        if row is None:
            return None
        channel_id = conn.execute(select(messages.c.channel_id).where(messages.c.id == row.message_id)).scalar_one()
    return FetchClaim(attachment_id, row.message_id, channel_id, row.ref or "", row.fetch_attempts)


def renew_lease(engine: Engine, attachment_id: int, lease: float = LEASE) -> bool:
    """Extend a claim while its download runs; False when the file is no longer pending."""
    with engine.begin() as conn:
        return conn.execute(update(attachments).where(f.id == attachment_id, f.fetch_state == "pending")
                            .values(lease_until=utcnow() + timedelta(seconds=lease))).rowcount > 0


def mark_done(engine: Engine, attachment_id: int, data: bytes, *, content_type: str | None = None,
              filename: str | None = None) -> bool:
    """The bytes came: the file is ``done`` (type and name replaced when the provider said them)."""
    values: dict[str, Any] = {"data": data, "size": len(data)}
    if content_type:
        values["content_type"] = clean(content_type)[:200]  # type: ignore[index]
    if filename:
        values["filename"] = clean(filename)[:500]  # type: ignore[index]
    return _move(engine, attachment_id, "done", fetch_error=None, **values)


def mark_failed(engine: Engine, attachment_id: int, reason: str) -> bool:
    """The file will not come: ``failed`` with ``reason`` for the agent."""
    return _move(engine, attachment_id, "failed", fetch_error=clean(reason)[:2000])  # type: ignore[index]


def mark_retry(engine: Engine, attachment_id: int, reason: str, delay: float) -> None:
    """A transient failure: still pending, due again after ``delay``, the reason kept meanwhile."""
    with engine.begin() as conn:
        conn.execute(update(attachments).where(f.id == attachment_id, f.fetch_state == "pending")
                     .values(lease_until=None, fetch_error=clean(reason)[:2000],  # type: ignore[index]
                             next_fetch_at=utcnow() + timedelta(seconds=delay)))


def _move(engine: Engine, attachment_id: int, state: str, **values: Any) -> bool:
    with engine.begin() as conn:
        row = conn.execute(
            update(attachments).where(f.id == attachment_id, f.fetch_state == "pending")
            .values(fetch_state=state, lease_until=None, next_fetch_at=None, **values)
            .returning(f.message_id)
        ).first()
        if row is None:
            return False
        conversation_id = conn.execute(select(messages.c.conversation_id)
                                       .where(messages.c.id == row.message_id)).scalar_one()
        append(conn, [event("message.updated", conversation_id, message_id=row.message_id,
                            attachment_id=attachment_id, state=state)])
    return True


def due(engine: Engine, *, grace: float, limit: int = 1000) -> list[int]:
    """Pending files whose fetch is due for longer than ``grace`` and that no live lease holds:
    their job was lost (the broker's queue flushed, a worker killed). Each one returned is marked
    not to be rung again before ``store.jobs.look_again`` (a file merely waiting its turn in the
    queue is not rung at every sweep), in the statement that decides: sweeps at once ring it once."""
    now = utcnow()
    lost = (f.fetch_state == "pending") & (f.next_fetch_at <= now - timedelta(seconds=grace)) \
        & or_(f.lease_until.is_(None), f.lease_until < now) & or_(f.look_again_at.is_(None), f.look_again_at < now)
    return rung_once(engine, attachments, lost, since=f.next_fetch_at, mark=f.look_again_at, now=now, grace=grace,
                     limit=limit)
