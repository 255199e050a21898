"""The event stream's record: every change an agent may see is an event row, written in the same
transaction as the change, so there is no event without its change and no change without its event.

Writers build rows with :func:`event` and write them with :func:`append` (one multi-row INSERT a
transaction: gather a transaction's events and append them once, as its last statement). The ids
are the stream's order. Readers ask for the events after the last id they saw (:class:`Reader`),
filtered by what the agent may see.

Ids are drawn when a transaction inserts and seen when it commits, so on PostgreSQL a reader may
see id N+1 before N (the transaction that took N has not committed yet), or never see N (it
rolled back). Serialising the writers' commits would rule that out at a price the hot path would
pay; instead a reader never steps over a missing id until it is settled: filled, or missing for
SETTLE seconds while later ones are there (a rollback), or followed by an event older than OLD
seconds. Events are written as a transaction's last statement, so a committing transaction
fills its ids within milliseconds.

Types: ``message.created`` (in, out, notes), ``message.status`` (a reply's delivery status),
``message.updated`` (a file fetched from the provider, or failed: store.fetches),
``conversation.created``, ``conversation.updated`` (assignment, status, priority, team, language),
``sla.near_breach`` and ``sla.breached`` (a response target near or past its due time: store.sla),
``contact.updated`` (a customer unreachable on a channel, or again reachable: store.reachability),
``agent.presence``, ``agent.typing``, ``agent.updated`` (role, teams or activity changed: streams re-read what the agent may see), ``conversation.read`` (an agent's read marker moved: for that
agent alone, see PERSONAL). ``conversation_id`` names the conversation; ``agent_id`` the
agent an event is about (presence, typing; the agent a conversation was taken from).

Pruning (:func:`prune`) keeps one mark: the newest pruned id stays as a row of type ``pruned``, so a
reader can tell a cursor from before the pruned horizon (it missed events: reset) from one that
only crossed numbers no transaction committed.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, delete, func, or_, select, true, update

from store import wakeups  # noqa: F401 - registers the wake-up rung after a transaction that wrote events
from store.conversations import visible_to
from store.dialect import insert_events
from store.models import Event, utcnow
from store.sql import conversations

__all__ = ["PERSONAL", "PRUNED", "Reader", "append", "event", "head", "horizon", "prune", "record"]

events = Event.__table__  # type: ignore[attr-defined]
e = events.c
PRUNED = "pruned"  # the mark of the pruned horizon; never sent
SETTLE = 2.0  # seconds a reader waits for a missing id while later ones are there
OLD = 60.0  # seconds after which an event's missing predecessors are settled for any reader
RECENT = 10.0  # a new reader starts before a missing id followed by events this young
PERSONAL = ("conversation.read",)  # events read only by the agent they name (``agent_id``), admins too


def event(type_: str, conversation_id: int | None = None, *, agent_id: int | None = None,
          at: datetime | None = None, **data: Any) -> dict[str, Any]:
    """An event row: ``type_`` about ``conversation_id`` (and/or ``agent_id``), with ``data``
    (JSON: ids and short values, never a message's text)."""
    return {"created_at": at or utcnow(), "type": type_, "conversation_id": conversation_id, "agent_id": agent_id,
            "data": data}


def append(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` in ``conn``'s transaction, in one statement; nothing for no rows. Call it as
    the transaction's last statement: readers wait at an id drawn and not yet committed."""
    insert_events(conn, rows)


def record(engine: Engine, row: dict[str, Any]) -> None:
    """An event that is a change of its own (an agent typing), in a transaction of its own."""
    with engine.begin() as conn:
        append(conn, [row])


def head(engine: Engine) -> int:
    """The newest event id (0 when there is none yet)."""
    with engine.connect() as conn:
        return conn.execute(select(func.max(e.id))).scalar() or 0


def horizon(engine: Engine) -> int:
    """The newest pruned id: a reader whose last id is below it has missed events (0: none pruned)."""
    with engine.connect() as conn:
        first = conn.execute(select(e.id, e.type).order_by(e.id).limit(1)).first()
    return first.id if first is not None and first.type == PRUNED else 0


class Reader:
    """One subscriber's place in the stream: the events after ``after`` that the agent may see.

    Visibility is the conversation's now (``store.conversations.visible_to``, the SQL form of
    ``router.access.may_see``), when the events are read: an agent gets the events of the
    conversations they may see at that moment, including the earlier events of one that has just
    become theirs, and none of one they may no longer see, except the event that took it from
    them (its ``agent_id`` names them), so their inbox can drop it. The agent's teams are read in
    the same statement, so an admin's change of them applies to a stream opened before it at its
    next read. Events about no conversation (presence) go to everyone; PERSONAL ones to their agent
    alone. ``after`` moves over the events the agent may not see too."""

    def __init__(self, engine: Engine, after: int, *, agent_id: int, admin: bool, settle: float = SETTLE,
                 shared: bool = False) -> None:
        self.engine, self.after, self.agent_id, self.admin, self.settle = engine, after, agent_id, admin, settle
        self.shared = shared  # every event, PERSONAL ones too: a web process's streams filter them
        self._gap: tuple[int, float] | None = None  # the missing id waited for, since (monotonic)
        self.held = False  # the last read stopped at a missing id: read again soon

    @classmethod
    def at_head(cls, engine: Engine, **kw: Any) -> Reader:
        """A reader of what comes next: after the newest event, or before the oldest id still missing
        among the recent ones (a transaction that has not committed yet)."""
        with engine.connect() as conn:
            recent = conn.execute(select(e.id, e.created_at).order_by(e.id.desc()).limit(200)).all()
        after = recent[0].id if recent else 0
        young = utcnow() - timedelta(seconds=RECENT)
        for newer, older in itertools.pairwise(recent):
            if newer.id - older.id > 1 and newer.created_at > young:
                after = older.id
        return cls(engine, after, **kw)

    def read(self, limit: int = 500) -> list[Any]:
        """The next events the agent may see, oldest first (at most ``limit`` read), each with its
        conversation's assignee and team as they are now (an admin's reader reads every event:
        a web process shares one among its streams, which filter with ``router.access``)."""
        mine = true() if self.admin else or_(e.conversation_id.is_(None), e.agent_id == self.agent_id,
                                             visible_to(self.agent_id, admin=False))
        mine = true() if self.shared else and_(or_(e.type.not_in(PERSONAL), e.agent_id == self.agent_id), mine)
        query = (select(e.id, e.type, e.conversation_id, e.agent_id, e.data, e.created_at,
                        case((mine, True), else_=False).label("visible"),
                        conversations.c.assignee_id, conversations.c.team_id)
                 .outerjoin(conversations, conversations.c.id == e.conversation_id)
                 .where(e.id > self.after).order_by(e.id).limit(limit))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        found = []
        self.held = False
        for row in rows:
            if row.id != self.after + 1 and not self._settled(self.after + 1, row.created_at):
                self.held = True
                break
            self.after = row.id
            if row.visible and row.type != PRUNED:
                found.append(row)
        return found

    def _settled(self, missing: int, next_created: datetime) -> bool:
        if next_created < utcnow() - timedelta(seconds=OLD):
            return True
        now = time.monotonic()
        if self._gap is None or self._gap[0] != missing:
            self._gap = (missing, now)
        return now - self._gap[1] >= self.settle


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
