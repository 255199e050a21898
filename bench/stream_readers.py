"""Event-stream readers for the benchmarks (bench.inbox, bench.webchat), run as processes of their
own (started and read by ``bench.common.Readers``):

    python -m bench.stream_readers PLAN OUT

PLAN is a JSON file: ``{"host": ..., "ready": PATH, "streams": [[key, port, request], ...]}``;
each stream is one asyncio connection to ``port`` that sends ``request`` (a raw HTTP/1.1 GET, e.g. a
visitor's ``/webchat/{id}/events`` or an agent's ``/api/v1/events``) and then reads the answer as
bytes in an ``asyncio.Protocol`` (an HTTP client library's per-line cost, or a task's per read,
would be measured too: this process shares the machine with the server). Once every stream is
answered 200, it writes ``ready`` into the file PATH (``failed ...`` if one was refused); it keeps
reading until SIGTERM (stamping and keeping each read), then writes OUT: one line a stream,
``key message_id:arrived ...`` for each ``message.created`` event of a message coming in
(``"direction":"in"``), arrival on the wall clock in seconds.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

_ID = re.compile(rb'"message_id":(\d+)')
# An event's data line starts with its type (web.events.shown, web.webchat_stream.visitor_frame):
# the regular expression skips the other events' lines without a Python step for each line (and
# with no ``^``: a multi-line anchor is tried at every byte, a literal start is searched for).
_CREATED = re.compile(rb'data: \{"type":"message\.created",[^\n]*')  # only ever at a line's start


def created_in(block: bytes) -> list[int]:
    """The message ids of the incoming ``message.created`` events in whole lines of a stream (the
    chunk-size lines of the chunked encoding fall between events and are skipped)."""
    found = []
    for line in _CREATED.findall(block):
        if b'"direction":"in"' in line:
            match = _ID.search(line)
            if match:
                found.append(int(match.group(1)))
    return found


def arrivals(reads: list[tuple[float, bytes]]) -> list[tuple[int, float]]:
    """Each incoming message's id and when its event arrived, from a stream's ``reads`` (the time of
    each read and its bytes, after the answer's head): an event arrived with the read that
    completed it."""
    got: list[tuple[int, float]] = []
    rest = b""
    for now, data in reads:
        complete, _, rest = (rest + data).rpartition(b"\n\n")
        got.extend((mid, now) for mid in created_in(complete))
    return got


class _Stream(asyncio.Protocol):
    """One stream, read in the event loop's callback itself, each read only stamped and kept: the
    events are found in them at the end (:func:`arrivals`). What a browser spends reading a stream
    is spent on its own machine; this process shares the machine with the server, so it does
    no more per read than it must (a profile of it parsing as it read: 60 % of its time)."""

    def __init__(self, request: bytes, reads: list[tuple[float, bytes]], state: dict[str, Any]) -> None:
        self.request, self.reads, self.state = request, reads, state
        self.head = b""  # until the answer's head is whole
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.head is None:
            self.reads.append((time.time(), data))
            return
        head, found, data = (self.head + data).partition(b"\r\n\r\n")
        if not found:
            self.head = head
            return
        if not head.startswith(b"HTTP/1.1 200"):
            self._fail(head[:12].decode(errors="replace"))
            return
        self.head = None  # type: ignore[assignment]
        self.reads.append((time.time(), data))
        self.state["open"] += 1
        if self.state["open"] == self.state["total"]:
            self.state["done"].set()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.state["stopping"]:
            self._fail(type(exc).__name__ if exc else "closed")

    def _fail(self, why: str) -> None:
        self.state["failures"].append(why)
        self.state["done"].set()
        if self.transport is not None:
            self.transport.close()


async def _follow(host: str, port: int, request: str, reads: list[tuple[float, bytes]], state: dict[str, Any]) -> None:
    try:
        transport, _ = await asyncio.get_running_loop().create_connection(
            lambda: _Stream(request.encode(), reads, state), host, port)
    except OSError as exc:
        state["failures"].append(type(exc).__name__)
        state["done"].set()
        return
    state["transports"].append(transport)


async def main(plan_path: str, out_path: str) -> None:
    plan = json.loads(Path(plan_path).read_text())
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    state: dict[str, Any] = {"open": 0, "total": len(plan["streams"]), "failures": [], "done": asyncio.Event(),
                             "stopping": False, "transports": []}
    received: dict[str, list[tuple[float, bytes]]] = {str(key): [] for key, _, _ in plan["streams"]}
    tasks = []
    for n, (key, port, request) in enumerate(plan["streams"]):
        tasks.append(asyncio.create_task(_follow(plan["host"], port, request, received[str(key)], state)))
        if n % 100 == 99:
            await asyncio.sleep(0.02)  # a browser's pace, not a SYN flood
    await asyncio.wait([asyncio.create_task(state["done"].wait()), asyncio.create_task(stop.wait())],
                       return_when=asyncio.FIRST_COMPLETED)
    Path(plan["ready"]).write_text("ready" if not state["failures"] and state["open"] == state["total"]
                                   else f"failed {state['failures'][:5]}")
    await stop.wait()
    state["stopping"] = True
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for transport in state["transports"]:
        transport.close()
    with open(out_path, "w") as out:
        for key, reads in received.items():
            out.write(f"{key} {' '.join(f'{mid}:{now:.4f}' for mid, now in arrivals(reads))}\n")
    if state["failures"]:
        print(f"stream failures: {state['failures'][:10]} ({len(state['failures'])})", file=sys.stderr)


def run(argv: list[str]) -> Any:
    try:
        import uvloop

        return uvloop.run(main(*argv))
    except ImportError:
        return asyncio.run(main(*argv))


if __name__ == "__main__":
    run(sys.argv[1:])
