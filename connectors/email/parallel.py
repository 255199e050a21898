"""Parsing fetched mail off the polling thread, so that a backlog is parsed on another core while
the caller stores the batch before.

:func:`submit` starts parsing one batch and returns at once; :meth:`Parsing.result` waits for it.
Batches of at least ``MIN_POOLED`` messages go to a process pool shared by every mailbox of this
process (started on first use with the ``forkserver`` method where there is one, else ``spawn``:
the pollers run in worker threads, where a plain fork is unsafe). Smaller batches, a live mailbox's
trickle, are parsed in the calling thread, as is any batch the pool fails on: a pool that cannot
start or whose worker died never costs a message, it only costs the speed-up.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime

from connectors.base import Event, Identity, InboundMessage
from connectors.email.parse import parse_email, synthetic_id

log = logging.getLogger(__name__)

MIN_POOLED = 20  # fewer messages than this are parsed in the calling thread
WORKERS = max(1, min(4, (os.cpu_count() or 1) - 1))  # the polling thread keeps a core for storing


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    """What :func:`~connectors.email.parse.parse_email` needs of the channel's settings (and no secret)."""

    own_addresses: tuple[str, ...]
    max_attachment_bytes: int
    allow_remote_images: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Fetched:
    """One message as the IMAP server gave it."""

    uid: int
    raw: bytes
    received: datetime | None  # INTERNALDATE, in UTC (imapclient's own time zone class does not pickle)


def parse_fetched(items: Sequence[Fetched], options: Options) -> list[Event]:
    """Each message parsed, in order. Never raises for one message: it is kept with a parse error."""
    return [_event(item, options) for item in items]


def _event(item: Fetched, options: Options) -> Event:
    raw = item.raw
    try:
        event = parse_email(raw, own_addresses=options.own_addresses, allow_remote_images=options.allow_remote_images,
                            max_attachment_bytes=options.max_attachment_bytes)
    except Exception as exc:  # parse_email should never raise; if it does, the mail is kept anyway
        log.exception("%s: UID %s could not be parsed", ", ".join(options.own_addresses), item.uid)
        return InboundMessage(external_id=synthetic_id(raw), sender=Identity(external_id="unknown"),
                              parse_error=f"{type(exc).__name__}: {exc}"[:500], raw=raw)
    if isinstance(event, InboundMessage) and event.sent_at is None and item.received is not None:
        # no (readable) Date header: when the server received it is the next best thing
        event = dataclasses.replace(event, sent_at=item.received)
    return event


class Parsing:
    """One batch being parsed: in the pool (a future per chunk), or done already."""

    def __init__(self, options: Options, jobs: list[tuple[Sequence[Fetched], Future[list[Event]] | None]]) -> None:
        self._options, self._jobs = options, jobs

    def result(self) -> list[Event]:
        events: list[Event] = []
        for chunk, future in self._jobs:
            if future is None:
                events += parse_fetched(chunk, self._options)
                continue
            try:
                events += future.result()
            except Exception as exc:  # noqa: BLE001 - a dead worker or a pickling error: parse here
                log.warning("parsing %d messages in the pool failed (%s: %s); parsing them here", len(chunk),
                            type(exc).__name__, exc)
                if isinstance(exc, BrokenProcessPool):
                    _forget()
                events += parse_fetched(chunk, self._options)
        return events

    def cancel(self) -> None:
        for _, future in self._jobs:
            if future is not None:
                future.cancel()


def submit(items: Sequence[Fetched], options: Options) -> Parsing:
    """Start parsing ``items``; the events come, in order, from ``.result()``."""
    if len(items) < MIN_POOLED:
        return Parsing(options, [(items, None)])
    size = -(-len(items) // WORKERS)
    jobs: list[tuple[Sequence[Fetched], Future[list[Event]] | None]] = []
    for start in range(0, len(items), size):
        chunk = items[start:start + size]
        try:
            future: Future[list[Event]] | None = _executor().submit(parse_fetched, chunk, options)
        except Exception as exc:  # noqa: BLE001 - the pool cannot start or is broken: parse here
            log.warning("the parsing pool is not available (%s: %s); parsing here", type(exc).__name__, exc)
            _forget()
            future = None
        jobs.append((chunk, future))
    return Parsing(options, jobs)


# -- the pool --------------------------------------------------------------------------------------

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_ended = False  # shutdown() was called: the process is stopping, no pool starts again


def _executor() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _ended:
            raise RuntimeError("the process is stopping")
        if _pool is None:
            method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
            _pool = ProcessPoolExecutor(max_workers=WORKERS, mp_context=multiprocessing.get_context(method),
                                        initializer=_ignore_sigint)
        return _pool


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def shutdown() -> None:
    """End the pool and the helper processes multiprocessing started for it (the forkserver and
    the resource tracker), waiting for them: the process is stopping. A poll still running (past
    its worker's grace) parses what it asks for afterwards in its own thread: a new pool started
    then, with its own forkserver, while this stops the last one, could hold the process's exit."""
    global _pool, _ended
    with _lock:
        pool, _pool, _ended = _pool, None, True
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
    # Both are started once per process and would otherwise outlive it if it is killed later.
    # multiprocessing has no public call that stops them: its own tests' one, where it exists.
    from multiprocessing import forkserver, resource_tracker

    for helper in (forkserver._forkserver, resource_tracker._resource_tracker):
        stop = getattr(helper, "_stop", None)
        if stop is not None:
            stop()


def _forget() -> None:
    """Drop the pool (it is broken): the next batch starts a new one."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)
