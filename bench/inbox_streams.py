"""Event-stream clients for the inbox benchmark, run as a process of their own:

    python -m bench.inbox_streams PLAN OUT

PLAN is a JSON file: ``{"urls": [...], "streams": [[stream, token], ...]}``; each stream is an
asyncio connection to ``GET /api/v1/events`` of one of the urls (in turn). Prints ``ready`` once
every stream has been answered, then keeps reading until SIGTERM, and writes OUT: one line a
stream, ``stream message_id:arrived message_id:arrived ...`` for each ``message.created`` event
(arrival on the wall clock, seconds).
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
from urllib.parse import urlsplit

# One event a line of data; the stream's chunk headers fall between events, never inside one.
_CREATED = re.compile(rb'"message\.created"[^\n]*?"message_id":(\d+)')


async def _follow(url: str, token: str, got: list[str], opened: asyncio.Event, counter: list[int], total: int,
                  failures: list[str]) -> None:
    """One stream, read as bytes (an HTTP client library's per-line cost would be measured too:
    these processes share the machine with the server)."""
    where = urlsplit(url)
    try:
        reader, writer = await asyncio.open_connection(where.hostname, where.port)
        writer.write(f"GET /api/v1/events HTTP/1.1\r\nHost: {where.netloc}\r\nAuthorization: Bearer {token}\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            failures.append(head[:12].decode(errors="replace"))
            return
        counter[0] += 1
        if counter[0] == total:
            opened.set()
        rest = b""
        while chunk := await reader.read(65536):
            now = time.time()
            complete, _, rest = (rest + chunk).rpartition(b"\n\n")
            for found in _CREATED.finditer(complete):
                got.append(f"{int(found.group(1))}:{now:.4f}")
        failures.append("closed")
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        failures.append(type(exc).__name__)


async def main(plan_path: str, out_path: str) -> None:
    plan = json.loads(Path(plan_path).read_text())
    urls, streams = plan["urls"], plan["streams"]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    opened = asyncio.Event()
    counter: list[int] = [0]
    failures: list[str] = []
    received: dict[int, list[str]] = {stream: [] for stream, _ in streams}
    tasks = [asyncio.create_task(_follow(urls[n % len(urls)], token, received[stream], opened, counter, len(streams),
                                         failures))
             for n, (stream, token) in enumerate(streams)]
    await asyncio.wait([asyncio.create_task(opened.wait()), asyncio.create_task(stop.wait())],
                       return_when=asyncio.FIRST_COMPLETED)
    print("ready" if opened.is_set() else f"failed {failures[:5]}", flush=True)
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    with open(out_path, "w") as out:
        for stream, got in received.items():
            out.write(f"{stream} {' '.join(got)}\n")
    if failures:
        print(f"stream failures: {failures[:10]} ({len(failures)})", file=sys.stderr)


def run(argv: list[str]) -> Any:
    try:
        import uvloop

        return uvloop.run(main(*argv))
    except ImportError:
        return asyncio.run(main(*argv))


if __name__ == "__main__":
    run(sys.argv[1:])
