"""The event stream's record: every change an agent may see is an event row, written in the same
transaction as the change, so there is no event without its change and no change without its event.

Writers build rows with :func:`event` and write them with :func:`append` (one multi-row INSERT a
transaction: gather a transaction's events and append them once, as its last statement). The ids
are the stream's order, in commit order (see ``store.dialect.insert_events``). Readers ask for
the events after the last id they saw (:func:`read_after`), filtered by what the agent may see.

Types: ``message.created`` (in, out, notes), ``message.status`` (a reply's delivery status),
``conversation.created``, ``conversation.updated`` (assignment, status, priority, team, language),
``agent.presence``. ``conversation_id`` names the conversation; ``agent_id`` the agent an event is
about (presence; the agent a conversation was taken from).

Pruning (:func:`prune`) keeps one mark: the newest pruned id stays as a row of type ``pruned``, so a
reader can tell a cursor from before the pruned horizon (it missed events: reset) from one that
only crossed numbers no transaction committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, or_, select, update
from sqlalchemy import event as sa_event
from sqlalchemy.pool import Pool

from store.conversations import visible_to
from store.dialect import EVENTS_CHANNEL, WROTE_EVENTS, insert_events
from store.models import Event, utcnow
from store.sql import conversations

__all__ = ["EVENTS_CHANNEL", "PRUNED", "append", "event", "head", "horizon", "on_written", "prune", "read_after"]

events = Event.__table__  # type: ignore[attr-defined]
e = events.c
PRUNED = "pruned"  # the mark of the pruned horizon; never sent


def event(type_: str, conversation_id: int | None = None, *, agent_id: int | None = None,
          at: datetime | None = None, **data: Any) -> dict[str, Any]:
    """An event row: ``type_`` about ``conversation_id`` (and/or ``agent_id``), with ``data``
    (JSON: ids and short values, never a message's text)."""
    return {"created_at": at or utcnow(), "type": type_, "conversation_id": conversation_id, "agent_id": agent_id,
            "data": data}


def append(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` in ``conn``'s transaction, in one statement; nothing for no rows. Call it as
    the transaction's last statement: on PostgreSQL it holds the stream's order until commit."""
    insert_events(conn, rows)


def head(engine: Engine) -> int:
    """The newest event id (0 when there is none yet)."""
    with engine.connect() as conn:
        return conn.execute(select(func.max(e.id))).scalar() or 0


def horizon(engine: Engine) -> int:
    """The newest pruned id: a reader whose last id is below it has missed events (0: none pruned)."""
    with engine.connect() as conn:
        first = conn.execute(select(e.id, e.type).order_by(e.id).limit(1)).first()
    return first.id if first is not None and first.type == PRUNED else 0


def read_after(engine: Engine, after: int, *, agent_id: int, admin: bool, limit: int = 500) -> list[Any]:
    """The events after id ``after`` that the agent may see, oldest first, at most ``limit``.

    Visibility is the conversation's now (``store.conversations.visible_to``, the SQL form of
    ``router.access.may_see``), when the events are read: an agent gets the events of the
    conversations they may see at that moment, including the earlier events of one that has just
    become theirs, and none of one they may no longer see, except the event that took it from
    them (its ``agent_id`` names them), so their inbox can drop it. Events about no conversation
    (presence) go to everyone."""
    query = select(e.id, e.type, e.conversation_id, e.agent_id, e.data, e.created_at).where(
        e.id > after, e.type != PRUNED)
    if not admin:
        query = query.outerjoin(conversations, conversations.c.id == e.conversation_id).where(
            or_(e.conversation_id.is_(None), e.agent_id == agent_id, visible_to(agent_id, admin=False)))
    with engine.connect() as conn:
        return list(conn.execute(query.order_by(e.id).limit(limit)).all())


def prune(engine: Engine, keep_hours: float, *, chunk: int = 10_000) -> int:
    """Delete events older than ``keep_hours``, at most ``chunk`` ids a call (the scheduler's sweep
    calls it often; each call reads a bounded range of the primary key). The newest pruned row
    stays as the ``pruned`` mark. Returns how many rows went."""
    cutoff = utcnow() - timedelta(hours=keep_hours)
    with engine.begin() as conn:
        first = conn.execute(select(e.id).where(e.type != PRUNED).order_by(e.id).limit(1)).scalar()
        if first is None:
            return 0
        last = conn.execute(select(func.max(e.id)).where(e.id >= first, e.id < first + chunk,
                                                         e.created_at < cutoff)).scalar()
        if last is None:
            return 0
        conn.execute(update(events).where(e.id == last).values(type=PRUNED, conversation_id=None, agent_id=None,
                                                                data={}))
        return conn.execute(delete(events).where(e.id < last)).rowcount + 1


# -- in-process wake-ups -----------------------------------------------------------------------
# A connection that wrote events rings the callbacks when it goes back to the pool, after its
# transaction ended (committed, or rolled back: then the ring is spurious, which costs one read).

_callbacks: list[Callable[[], None]] = []
_lock = threading.Lock()


def on_written(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` (from the writer's thread; it must be quick and thread-safe) whenever this
    process has written events. Returns the function that stops it."""
    with _lock:
        _callbacks.append(callback)

    def stop() -> None:
        with _lock:
            if callback in _callbacks:
                _callbacks.remove(callback)

    return stop


@sa_event.listens_for(Pool, "checkin")
def _rung(_dbapi_connection: Any, record: Any) -> None:
    if record is None or not record.info.pop(WROTE_EVENTS, False):
        return
    with _lock:
        callbacks = list(_callbacks)
    for callback in callbacks:
        callback()
