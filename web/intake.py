"""Group commit for webhooks: every request waiting in this process is stored in one transaction.

A webhook answers 2xx only once its messages are committed (the provider may forget them then),
so each request waits for a commit. Storing them one transaction each costs a commit, a pooled
connection and a dozen statements per message; under load most of the time goes there. Instead
the requests queue here, and one writer takes whatever has gathered while it was busy, stores it
all with :func:`workers.ingest` (multi-row statements, one commit a channel), rings the
router once a channel and answers every request. An idle server stores a lone request at once;
a busy one stores bigger batches, so the cost per message falls as the load rises.

Each request still gets its own answer: its messages are stored, or found stored before
(duplicates), or its error comes back to it alone. A batch that fails as a whole is retried one
message at a time by ``record_inbound`` itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from starlette.concurrency import run_in_threadpool

from connectors.base import Event
from store.inbound import Recorded
from workers import ingest

log = logging.getLogger("omnidesk.web.intake")

MAX_BATCH = 500  # messages a transaction; more waits for the next one
WRITERS = 1  # one transaction in flight: while it runs, the next batch gathers

_Request = tuple[int, Sequence[Event], "asyncio.Future[list[Recorded]]"]


class Intake:
    """The queue of one event loop (one web process)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: list[_Request] = []
        self._writers = 0
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    async def store(self, channel_id: int, events: Sequence[Event]) -> list[Recorded]:
        """Store ``events`` with whatever else is waiting; returns once they are committed."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new loop (a server restarted in the same process)
            self._loop, self._waiting, self._writers, self._tasks = loop, [], 0, set()
        done: asyncio.Future[list[Recorded]] = loop.create_future()
        self._waiting.append((channel_id, events, done))
        if self._writers < WRITERS:
            self._writers += 1
            task = loop.create_task(self._write())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await done

    async def _write(self) -> None:
        try:
            while self._waiting:
                batch, size = [], 0
                while self._waiting and (not batch or size + len(self._waiting[0][1]) <= MAX_BATCH):
                    request = self._waiting.pop(0)
                    batch.append(request)
                    size += len(request[1])
                try:
                    answers = await run_in_threadpool(_store, [(cid, events) for cid, events, _ in batch])
                except Exception as exc:  # noqa: BLE001 - every request of the batch gets the error
                    answers = [exc] * len(batch)
                for (_, _, done), answer in zip(batch, answers, strict=True):
                    if done.done():  # the request went away (client disconnected)
                        continue
                    if isinstance(answer, BaseException):
                        done.set_exception(answer)
                    else:
                        done.set_result(answer)
        finally:
            self._writers -= 1


def _store(requests: list[tuple[int, Sequence[Event]]]) -> list[list[Recorded] | Exception]:
    """Store the requests' events, one transaction a channel, each followed by its routing job."""
    answers: list[list[Recorded] | Exception] = [[] for _ in requests]
    by_channel: dict[int, list[int]] = {}
    for n, (channel_id, _) in enumerate(requests):
        by_channel.setdefault(channel_id, []).append(n)
    for channel_id, positions in by_channel.items():
        events = [event for n in positions for event in requests[n][1]]
        try:
            results = ingest(channel_id, events)
        except Exception as exc:  # noqa: BLE001 - each request of the channel gets the error
            log.error("channel %s: could not store %d messages: %s", channel_id, len(events), type(exc).__name__)
            for n in positions:
                answers[n] = exc
            continue
        start = 0
        for n in positions:
            answers[n] = results[start:start + len(requests[n][1])]
            start += len(requests[n][1])
    return answers


intake = Intake()
