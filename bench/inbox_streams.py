"""Event-stream clients for the inbox benchmark, run as a process of their own:

    python -m bench.inbox_streams PLAN OUT

PLAN is a JSON file: ``{"urls": [...], "streams": [[stream, token], ...]}``; each stream is an
httpx connection to ``GET /api/v1/events`` of one of the urls (in turn). Prints ``ready`` once
every stream has had its first line, then keeps reading until SIGTERM, and writes OUT: one line a
stream, ``stream message_id:arrived message_id:arrived ...`` for each ``message.created`` event
(arrival on the wall clock, seconds).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx


async def _follow(client: httpx.AsyncClient, url: str, token: str, got: list[str], opened: asyncio.Event,
                  counter: list[int], total: int, failures: list[str]) -> None:
    try:
        async with client.stream("GET", url + "/api/v1/events", headers={"Authorization": f"Bearer {token}"}) as answer:
            if answer.status_code != 200:
                failures.append(f"{answer.status_code}")
                return
            first = True
            async for line in answer.aiter_lines():
                if first:
                    first = False
                    counter[0] += 1
                    if counter[0] == total:
                        opened.set()
                if line.startswith("data: ") and '"message.created"' in line:
                    now = time.time()
                    at = line.index('"message_id":') + 13
                    got.append(f"{line[at:line.index(',', at) if ',' in line[at:] else -1]}:{now:.4f}")
    except (httpx.HTTPError, OSError) as exc:
        failures.append(type(exc).__name__)


async def main(plan_path: str, out_path: str) -> None:
    plan = json.loads(Path(plan_path).read_text())
    urls, streams = plan["urls"], plan["streams"]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    opened = asyncio.Event()
    counter, failures = [0], []
    received: dict[int, list[str]] = {stream: [] for stream, _ in streams}
    limits = httpx.Limits(max_connections=len(streams) + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=None), limits=limits) as client:
        tasks = [asyncio.create_task(_follow(client, urls[n % len(urls)], token, received[stream], opened, counter,
                                             len(streams), failures))
                 for n, (stream, token) in enumerate(streams)]
        waiting = asyncio.create_task(opened.wait())
        await asyncio.wait([waiting, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        print("ready" if opened.is_set() else f"failed {failures}", flush=True)
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
