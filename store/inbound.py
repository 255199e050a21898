"""Recording what customers send: exactly once, in few statements, on SQLite and PostgreSQL.

The unique key (channel_id, external_id) on messages makes every redelivery a no-op; the unique
key (channel_id, open_key) on conversations makes two first messages of one thread, stored at the
same moment, meet in one conversation. A batch is stored with a handful of multi-row statements
(store.inbound_batch); a message alone, or a batch that failed as a whole, one at a time
(store.inbound_message).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, update

from connectors.base import Event, Identity, InboundMessage, StatusUpdate
from store.inbound_batch import _record_batch
from store.inbound_message import Recorded, _Duplicate, _record_message, apply_status, contact_for
from store.sql import channels

__all__ = ["Recorded", "apply_status", "contact_for", "record_inbound"]

log = logging.getLogger(__name__)


def record_inbound(
    engine: Engine,
    channel_id: int,
    events: Sequence[Event],
    *,
    cursor: dict[str, Any] | None = None,
) -> list[Recorded]:
    """Store ``events`` (and move the channel's ``cursor``) in one transaction.

    Messages already stored come back with ``duplicate=True``. Delivery receipts move outbound
    statuses forward and come back with ``message_id`` of the message they named (None if
    unknown). Should the batch fail as a whole, each message is retried alone, and one that
    cannot be stored even then is stored as a bare record of its raw source with the error, so a
    poller never stalls on one bad message.
    """
    # One message goes the batch's way too: its few statements cost less than the one-message
    # path's (which is kept for the retry below, where each message needs its own transaction).
    try:
        with engine.begin() as conn:
            results = _record_batch(conn, channel_id, events)
            if cursor is not None:
                _save_cursor(conn, channel_id, cursor)
            return results
    except _Duplicate:
        log.info("channel %s: a concurrent writer stored part of this batch; storing one by one", channel_id)
    except Exception:
        log.exception("channel %s: batch of %d failed; storing one by one", channel_id, len(events))
    results = []
    for event in events:
        try:
            results.append(_record_alone(engine, channel_id, event))
        except Exception as exc:  # noqa: BLE001 - keep it, with the error, rather than lose it
            results.append(_record_unstorable(engine, channel_id, event, exc))
    with engine.begin() as conn:
        if cursor is not None:
            _save_cursor(conn, channel_id, cursor)
    return results


def _save_cursor(conn: Connection, channel_id: int, cursor: dict[str, Any]) -> None:
    conn.execute(update(channels).where(channels.c.id == channel_id).values(cursor=cursor))


def _record_alone(engine: Engine, channel_id: int, event: Event) -> Recorded:
    """One event in its own transaction; a duplicate rolls back whatever it had created."""
    try:
        with engine.begin() as conn:
            if isinstance(event, StatusUpdate):
                return apply_status(conn, channel_id, event)
            return _record_message(conn, channel_id, event)
    except _Duplicate as dup:
        return dup.recorded


def _record_unstorable(engine: Engine, channel_id: int, event: Event, exc: Exception) -> Recorded:
    """Last resort for a message the database refused: keep its raw source and the error in a
    conversation of its own, so nothing is lost and an admin can see it."""
    log.error("channel %s: could not store %r: %s", channel_id, getattr(event, "external_id", "?"), exc)
    if not isinstance(event, InboundMessage):
        return Recorded(None, None)
    bare = InboundMessage(
        external_id=event.external_id[:400],
        sender=Identity(external_id=event.sender.external_id[:400] or "unknown"),
        text="",
        parse_error=f"could not be stored as parsed: {type(exc).__name__}: {exc}"[:2000],
        raw=event.raw,
    )
    try:
        return _record_alone(engine, channel_id, bare)
    except Exception:
        log.exception("channel %s: raw record of %r failed too", channel_id, event.external_id)
        raise
