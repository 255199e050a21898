"""Event-stream readers for the benchmarks (bench.inbox, bench.webchat), run as processes of their
own (started and read by ``bench.common.Readers``):

    python -m bench.stream_readers PLAN OUT

PLAN is a JSON file: ``{"host": ..., "ready": PATH, "streams": [[key, port, request], ...]}``;
each stream is one asyncio connection to ``port`` that sends ``request`` (a raw HTTP/1.1 GET, e.g. a
visitor's ``/webchat/{id}/events`` or an agent's ``/api/v1/events``) and then reads the answer as
bytes (an HTTP client library's per-line cost would be measured too: this process shares the
machine with the server). Once every stream is answered 200, it writes ``ready``
into the file PATH (``failed ...`` if one was refused); it keeps reading until SIGTERM, then writes
OUT: one line a stream, ``key message_id:arrived ...`` for each ``message.created`` event of a
message coming in (``"direction":"in"``), arrival on the wall clock in seconds.
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
# the regular expression skips the other events' lines without a Python step for each line.
_CREATED = re.compile(rb'^data: \{"type":"message\.created",[^\n]*', re.MULTILINE)


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


async def _follow(host: str, port: int, request: str, got: list[tuple[int, float]], state: dict[str, Any]) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request.encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            state["failures"].append(head[:12].decode(errors="replace"))
            state["done"].set()
            return
        state["open"] += 1
        if state["open"] == state["total"]:
            state["done"].set()
        rest = b""
        while chunk := await reader.read(65536):
            now = time.time()
            complete, _, rest = (rest + chunk).rpartition(b"\n\n")
            got.extend((mid, now) for mid in created_in(complete))
        state["failures"].append("closed")
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        state["failures"].append(type(exc).__name__)
        state["done"].set()


async def main(plan_path: str, out_path: str) -> None:
    plan = json.loads(Path(plan_path).read_text())
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    state: dict[str, Any] = {"open": 0, "total": len(plan["streams"]), "failures": [], "done": asyncio.Event()}
    received: dict[str, list[tuple[int, float]]] = {str(key): [] for key, _, _ in plan["streams"]}
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
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    with open(out_path, "w") as out:
        for key, got in received.items():
            out.write(f"{key} {' '.join(f'{mid}:{now:.4f}' for mid, now in got)}\n")
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
