"""What the live event stream costs the web processes: ``--streams`` streams open on ``omnidesk
web`` (PostgreSQL), events written straight into the table at ``--rate`` a second, and the CPU
seconds the web processes, and the stream readers, spend a second of it.

    python -m bench.stream_fanout [--streams 500] [--rate 1000] [--seconds 20] [--web-workers 2]

The inbox benchmark (``bench.inbox``) measures the stream beside the ingest; this one measures the
stream alone, so that two versions of its path can be compared on their CPU, run against run,
without the ingest's noise. Each event is a ``message.created`` of a conversation of the shop (one
of ``bench.inbox_data``'s, tiny), written by this process in batches ten times a second, as the
workers would; the streams are the agents' in turn (10 each for 500), as in ``bench.inbox``.
Reported: the web processes' CPU seconds a second, the readers', deliveries and their delay
(write's commit -> arrival) p50 / p99.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import secrets
import sys
import time
from pathlib import Path
from typing import Any

if not __package__:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench import inbox_data
from bench.common import (
    DEFAULT_PG,
    CpuMeter,
    Processes,
    Readers,
    emit,
    free_ports,
    percentile,
    scratch_database,
    stop_on_sigterm,
    use_database,
    wait_http,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.stream_fanout", description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--rate", type=float, default=1000.0, help="events a second (default 1000)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--database-url", default=DEFAULT_PG)
    args = parser.parse_args(argv)
    with stop_on_sigterm(), scratch_database(args.database_url) as url:
        env = use_database(url, OMNIDESK_LOG_LEVEL="WARNING")
        result = _run(args, env)
    emit(result)
    return 0


def _run(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    from store import events
    from store.db import get_engine, upgrade

    upgrade()
    engine = get_engine()
    shop = inbox_data.create(engine, env["OMNIDESK_DATABASE_URL"], messages=5000, conversations=1000,
                             secret=secrets.token_urlsafe(24))
    threads = [conversation for conversation, _ in shop.open_threads]
    ports = free_ports(args.web_workers)
    procs = Processes(env)
    try:
        web = {procs.omnidesk(f"web-{n}", "web", "--host", "127.0.0.1", "--port", str(port)).pid
               for n, port in enumerate(ports)}
        for port in ports:
            wait_http(f"http://127.0.0.1:{port}/healthz", 60, procs)
        owner = {s: shop.agents[s % len(shop.agents)] for s in range(args.streams)}
        readers = Readers(procs)
        clients: set[int] = set()
        for part in range(2):
            clients.add(readers.start(f"streams-{part}", [
                (str(s), ports[s % len(ports)], f"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Authorization: Bearer {owner[s][1]}\r\nAccept: text/event-stream\r\n\r\n")
                for s in range(part, args.streams, 2)]).pid)
        readers.wait_ready(120)
        time.sleep(1)
        meter = CpuMeter({"web": web, "stream clients": clients}, {"PostgreSQL": "postgres"})
        before = meter.read()
        written = _write(engine, events, threads, args.rate, args.seconds)
        time.sleep(2)  # the last on their way
        spent = meter.spent(before, meter.read())
        received = readers.finish()
    except Exception:
        procs.show_logs()
        raise
    finally:
        procs.stop()
    wall = args.seconds + 2
    delays = [(arrived - written[m]) * 1000 for got in received.values() for m, arrived in got if m in written]
    figures = {
        "bench": "stream_fanout", "streams": args.streams, "rate": args.rate, "seconds": args.seconds,
        "web_workers": args.web_workers, "events": len(written), "deliveries": len(delays),
        "web_cpu_per_s": round(spent["web"] / wall, 3),
        "readers_cpu_per_s": round(spent["stream clients"] / wall, 3),
        "postgres_cpu_per_s": round(spent["PostgreSQL"] / wall, 3),
        "p50_delay_ms": round(percentile(delays, 50), 1), "p99_delay_ms": round(percentile(delays, 99), 1),
    }
    print(json.dumps({k: v for k, v in figures.items() if k != "bench"}, indent=1))
    return figures


def _write(engine: Any, events: Any, threads: list[int], rate: float, seconds: float) -> dict[int, float]:
    """``message.created`` events at ``rate`` a second, in ten transactions a second; each one's
    commit time (wall clock, as the readers stamp) by its message id."""
    rnd = random.Random(3)
    written: dict[int, float] = {}
    began, n = time.monotonic(), 0
    tick = 0
    while time.monotonic() - began < seconds:
        tick += 1
        due = int(rate * min(seconds, tick / 10))
        rows = [events.event("message.created", rnd.choice(threads), message_id=10**9 + m, direction="in")
                for m in range(n, due)]
        with engine.begin() as conn:
            events.append(conn, rows)
        committed = time.time()
        written.update((10**9 + m, committed) for m in range(n, due))
        n = due
        with contextlib.suppress(ValueError):
            time.sleep(began + tick / 10 - time.monotonic())
    return written


if __name__ == "__main__":
    raise SystemExit(main())
