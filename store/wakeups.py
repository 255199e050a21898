"""Wake-ups for the event stream: something tells a web process that events may have been written,
and its subscribers read them from the table (``store.events``). A wake-up carries nothing: one
that is missed only delays, since the stream also reads the table every few seconds.

- In-process: a connection that wrote events rings :func:`on_written`'s callbacks when it goes
  back to the pool, its transaction over. The embedded default (SQLite, ``omnidesk up``) writes
  everything in one process, so this is all it needs.
- Across processes, on PostgreSQL: the same moment wakes a :class:`Notifier` thread of the
  writing process, which sends ``NOTIFY`` on a connection of its own (outside the pool, with
  ``synchronous_commit`` off: a wake-up needs no disk flush), coalescing the writes that came
  meanwhile; web processes ``LISTEN`` (:class:`Wakeups`).

PostgreSQL's NOTIFY rather than Redis pub/sub: it is there wherever PostgreSQL is (a RabbitMQ
deployment has no Redis) and needs no second client. It is sent after the writer's commit, not
in its transaction: a NOTIFY in a transaction makes PostgreSQL serialise the commits of all the
notifying transactions, which the hot path (webhooks, routing) would pay for.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import Pool

from store.db import normalise_url
from store.dialect import WROTE_EVENTS, is_postgres

log = logging.getLogger("omnidesk.store.wakeups")

CHANNEL = "omnidesk_events"
RECONNECT = 1.0  # seconds before listening again after the connection failed
IDLE = 30.0  # seconds a notifier thread waits for work before it ends (a new one starts on demand)
SPACING = 0.05  # seconds between two NOTIFYs of a process: what is written meanwhile shares the next

_callbacks: list[Callable[[], None]] = []
_notifiers: weakref.WeakKeyDictionary[Engine, Notifier] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def on_written(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` (from the writer's thread: quick and thread-safe) whenever this process
    has written events. Returns the function that stops it."""
    with _lock:
        _callbacks.append(callback)

    def stop() -> None:
        with _lock:
            if callback in _callbacks:
                _callbacks.remove(callback)

    return stop


@event.listens_for(Pool, "checkin")
def _transaction_over(_dbapi_connection: Any, record: Any) -> None:
    """A connection is back in the pool: if it wrote events, ring (a rolled-back write rings for
    nothing, which costs each subscriber one read)."""
    engine = record.info.pop(WROTE_EVENTS, None) if record is not None else None
    if engine is None:
        return
    with _lock:
        callbacks = list(_callbacks)
        notifier = _notifiers.get(engine) if is_postgres(engine) else None
        if notifier is None and is_postgres(engine):
            notifier = _notifiers[engine] = Notifier(engine)
    for callback in callbacks:
        callback()
    if notifier is not None:
        notifier.ring()


def conninfo(url: URL | str) -> str:
    """A libpq connection string for a PostgreSQL URL (the password kept: never for a log)."""
    text = url if isinstance(url, str) else url.render_as_string(hide_password=False)
    return make_url(normalise_url(text)).set(drivername="postgresql").render_as_string(hide_password=False)


class Notifier:
    """Sends ``NOTIFY`` for one engine's database from a thread of its own, once for all the rings
    that came while it was sending: the writer never waits for it."""

    def __init__(self, engine: Engine) -> None:
        self._conninfo = conninfo(engine.url)
        self._due = threading.Event()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()

    def ring(self) -> None:
        self._due.set()
        with self._guard:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="omnidesk-events-notify", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        import psycopg

        conn: psycopg.Connection[Any] | None = None
        try:
            while True:
                if not self._due.wait(IDLE):
                    with self._guard:  # a ring after this finds no thread and starts one
                        if not self._due.is_set():
                            self._thread = None
                            return
                    continue
                self._due.clear()
                try:
                    if conn is None or conn.closed:
                        conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
                        conn.execute("SET synchronous_commit TO off")
                    conn.execute(f"NOTIFY {CHANNEL}")
                    time.sleep(SPACING)  # a busy writer notifies 20 times a second, not once a transaction
                except Exception as exc:  # noqa: BLE001 - a lost wake-up only delays (the stream polls)
                    log.warning("could not announce new events (%s)", type(exc).__name__)
                    if conn is not None:
                        conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()


class Wakeups:
    """Calls ``ring`` (from another thread: thread-safe and quick) whenever events may have been
    written, by this process or, on PostgreSQL, by any. ``start`` and ``stop`` once."""

    def __init__(self, database_url: str, ring: Callable[[], None]) -> None:
        self._ring = ring
        url = make_url(normalise_url(database_url))
        self._conninfo = conninfo(url) if url.get_backend_name() == "postgresql" else None
        self._halt = threading.Event()
        self._unhook: Callable[[], None] | None = None

    def start(self) -> None:
        self._unhook = on_written(self._ring)
        if self._conninfo is not None:
            threading.Thread(target=self._listen, name="omnidesk-events-listen", daemon=True).start()

    def stop(self) -> None:
        """Stop ringing; the listening thread ends within a second (not waited for)."""
        self._halt.set()
        if self._unhook is not None:
            self._unhook()

    def _listen(self) -> None:
        import psycopg

        while not self._halt.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:  # type: ignore[arg-type]
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._ring()  # (re)connected: anything written meanwhile is read now
                    while not self._halt.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self._ring()
            except Exception as exc:  # noqa: BLE001 - a listener that stops would only delay; keep trying
                log.warning("listening for events failed (%s); the stream polls meanwhile", type(exc).__name__)
                self._halt.wait(RECONNECT)
