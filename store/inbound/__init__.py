"""Recording what customers send: exactly once, in few statements, on SQLite and PostgreSQL.

The unique key (channel_id, external_id) on messages makes every redelivery a no-op; the unique
key (channel_id, open_key) on conversations makes two first messages of one thread, stored at the
same moment, meet in one conversation. The package is split by rule:

- ``rows``: the rows a message becomes, NUL cleaned from every text, and :class:`Recorded`;
- ``contacts``: who wrote (identities, contacts, participants);
- ``threads``: which conversation a message joins, and the reopen rule;
- ``receipts``: delivery statuses, only forward;
- ``batch``: a batch with a handful of multi-row statements (a message alone is a batch of one);
- ``failures``: a failed store told apart by kind (a conflict with a concurrent writer, the
  connection, or the content refused).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, update

from connectors.base import Event, InboundMessage
from store.inbound.batch import record_batch
from store.inbound.contacts import contact_for
from store.inbound.failures import bare_record, describe, is_conflict, is_connection_error, is_content_refusal
from store.inbound.receipts import apply_status
from store.inbound.rows import Duplicate, Recorded, clean_event
from store.sla import Deadline
from store.sql import channels

__all__ = ["Recorded", "apply_status", "contact_for", "record_inbound"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def record_inbound(
    engine: Engine,
    channel_id: int,
    events: Sequence[Event],
    *,
    cursor: dict[str, Any] | None = None,
    deadline: Deadline | None = None,
) -> list[Recorded]:
    """Store ``events`` (and move the channel's ``cursor``) in one transaction.

    Messages already stored come back with ``duplicate=True``. Delivery receipts move outbound
    statuses forward and come back with ``message_id`` of the message they named (None if
    unknown). NUL is cleaned from every text, the same on both databases. ``deadline``: the SLA
    rule, with which the transaction starts the SLA clocks of the waits it begins (store.sla).

    Failures, by kind (store.inbound.failures): a deadlock with a concurrent writer is tried
    once more, then the messages are stored one by one. A connection-level failure is retried
    once on a fresh connection and otherwise raised - nothing is stored as a bare record for it,
    and the cursor does not move. Should the batch fail otherwise, each message is stored alone, so one
    bad message cannot fail the others; a message whose content the database refuses is stored
    as a bare record (raw source, ids, the kind of refusal), so a poller never stalls on it. Any
    other failure of a message alone is raised once the others are stored (the cursor stays).
    """
    try:
        return transaction(engine, lambda conn: _batch_and_cursor(conn, channel_id, events, cursor, deadline))
    except Duplicate:
        log.info("channel %s: a concurrent writer stored part of this batch; storing one by one", channel_id)
    except Exception as exc:
        if is_connection_error(exc):
            raise
        if is_conflict(exc):
            log.info("channel %s: the batch deadlocked with a concurrent writer twice; storing one by one",
                     channel_id)
        else:
            log.warning("channel %s: batch of %d failed (%s); storing one by one", channel_id, len(events),
                        type(exc).__name__)
    results: list[Recorded] = []
    failed: Exception | None = None
    for event in events:
        try:
            results.append(_record_alone(engine, channel_id, event, deadline))
        except Exception as exc:
            if is_connection_error(exc):  # the database is gone for the others too
                raise
            # A fault of ours with this one message: the others are still stored, then it is raised.
            log.warning("channel %s: could not store %s (%s)", channel_id, describe(event), type(exc).__name__)
            failed = failed or exc
    if failed is not None:
        raise failed
    if cursor is not None:
        transaction(engine, lambda conn: _save_cursor(conn, channel_id, cursor))
    return results


def transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    """``work`` in one transaction; should it deadlock with a concurrent one, or the connection
    fail, once more (on a fresh connection: the pool drops a connection that failed, and those
    opened before it). Then the failure is raised.
    Should a commit have succeeded unseen, the second run finds its messages stored: duplicates,
    which ring no router, but the sweep routes what the store says is waiting."""
    try:
        with engine.begin() as conn:
            return work(conn)
    except Exception as exc:
        if is_conflict(exc):
            log.info("transaction deadlocked with a concurrent one (%s); trying once more", type(exc).__name__)
        elif is_connection_error(exc):
            log.warning("database connection failed (%s); trying once more", type(exc).__name__)
        else:
            raise
    with engine.begin() as conn:
        return work(conn)


def _batch_and_cursor(conn: Connection, channel_id: int, events: Sequence[Event],
                      cursor: dict[str, Any] | None, deadline: Deadline | None) -> list[Recorded]:
    results = record_batch(conn, channel_id, events, deadline=deadline)
    if cursor is not None:
        _save_cursor(conn, channel_id, cursor)
    return results


def _save_cursor(conn: Connection, channel_id: int, cursor: dict[str, Any]) -> None:
    conn.execute(update(channels).where(channels.c.id == channel_id).values(cursor=cursor))


def _record_alone(engine: Engine, channel_id: int, event: Event, deadline: Deadline | None = None) -> Recorded:
    """One event in its own transaction, as a batch of one; a message whose content the database
    refuses becomes a bare record. A connection failure (after its retry) is raised."""
    try:
        return _store_one(engine, channel_id, event, deadline)
    except Exception as exc:
        if not is_content_refusal(exc):
            raise
        log.warning("channel %s: the database refused %s (%s)", channel_id, describe(event), type(exc).__name__)
        if not isinstance(event, InboundMessage):  # a receipt it cannot hold: nothing of ours moves
            return Recorded(None, None)
        bare = bare_record(clean_event(event), exc)  # type: ignore[arg-type]
    try:
        return _store_one(engine, channel_id, bare, deadline)
    except Exception as exc:
        log.error("channel %s: the bare record of %s failed too (%s)", channel_id, describe(event),
                  type(exc).__name__)
        raise


def _store_one(engine: Engine, channel_id: int, event: Event, deadline: Deadline | None = None) -> Recorded:
    """A batch of one; a duplicate rolls back whatever it had created."""
    try:
        return transaction(engine, lambda conn: record_batch(conn, channel_id, [event], deadline=deadline)[0])
    except Duplicate as dup:
        return dup.recorded
