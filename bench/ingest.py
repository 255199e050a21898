"""Inbound throughput end to end: N signed webhook posts through the real HTTP server into
PostgreSQL, routed through Redis by worker processes, against a baseline in the same run.

    python -m bench.ingest [--messages 5000] [--concurrency 48]      (or: omnidesk bench ingest)

Processes, as deployed: ``omnidesk web`` (uvicorn), ``omnidesk worker`` and ``omnidesk scheduler``,
each its own OS process, on a scratch database and a Redis namespace of their own. The load
generator (asyncio + aiohttp, bodies and signatures made in advance) posts one message per customer,
so each message opens a conversation that must be assigned to one of 20 online agents.

Measured: webhook answer time (p50/p99), messages stored per second (first post to last 202),
messages stored *and assigned* per second (first post to the last assignment), and inbound-to-
assigned time per conversation (message stored -> assignment row, both stamped by the database
writers). Baseline: the same load against :mod:`bench.baseline_app`, the same stack doing one
INSERT transaction per post.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx

from bench.common import DEFAULT_PG, DEFAULT_REDIS, emit, free_port, percentile, scratch_database, use_database

AGENTS = 20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omnidesk bench ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=48, help="requests in flight")
    parser.add_argument("--web-workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--workers", type=int, default=1, help="omnidesk worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker process")
    parser.add_argument("--database-url", default=DEFAULT_PG, help="PostgreSQL to make scratch databases in")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    args = parser.parse_args(argv)
    secret = secrets.token_urlsafe(24)
    bodies = _bodies(args.messages, secret)

    with scratch_database(args.database_url, keep=args.keep) as url:
        env = use_database(url, BASELINE_SECRET=secret)
        port = free_port()
        with _processes([[sys.executable, "-m", "uvicorn", "bench.baseline_app:create_app", "--factory",
                          "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.web_workers),
                          "--log-level", "warning"]], env):
            _wait_healthy(f"http://127.0.0.1:{port}/docs")
            base = asyncio.run(_load(f"http://127.0.0.1:{port}/webhooks/1", bodies, args.concurrency))
        print(f"baseline (one INSERT per post): {base['rate']:.0f} msgs/s, "
              f"ack p50 {base['p50']:.1f} ms, p99 {base['p99']:.1f} ms")

    with scratch_database(args.database_url, keep=args.keep) as url:
        namespace = f"omnidesk-bench-{secrets.token_hex(4)}"
        port = free_port()
        env = use_database(url, OMNIDESK_REDIS_URL=args.redis_url, OMNIDESK_REDIS_NAMESPACE=namespace,
                           OMNIDESK_PUBLIC_URL=f"http://127.0.0.1:{port}", OMNIDESK_LOG_LEVEL="WARNING",
                           OMNIDESK_WORKER_THREADS=str(args.threads))
        channel_id = _setup(secret)
        omnidesk = [sys.executable, "-m", "cli"]
        commands = [[*omnidesk, "web", "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.web_workers)],
                    [*omnidesk, "scheduler"]]
        commands += [[*omnidesk, "worker", "--threads", str(args.threads)] for _ in range(args.workers)]
        try:
            with _processes(commands, env):
                _wait_healthy(f"http://127.0.0.1:{port}/healthz")
                run = asyncio.run(_load(f"http://127.0.0.1:{port}/webhooks/{channel_id}", bodies, args.concurrency))
                figures = _wait_assigned(args.messages, timeout=max(60.0, args.messages / 100))
        finally:
            _flush(args.redis_url, namespace)
        from store.db import get_engine

        get_engine().dispose()

    rate = args.messages / figures["seconds"] if figures["assigned"] == args.messages else 0.0
    result = {
        "bench": "ingest", "messages": args.messages, "concurrency": args.concurrency,
        "msgs_per_s": round(rate, 1), "stored_msgs_per_s": round(run["rate"], 1),
        "baseline_msgs_per_s": round(base["rate"], 1),
        "ratio_to_baseline": round(rate / base["rate"], 3) if base["rate"] else None,
        "p50_ack_ms": round(run["p50"], 1), "p99_ack_ms": round(run["p99"], 1),
        "baseline_p99_ack_ms": round(base["p99"], 1),
        "p50_assign_ms": round(figures["p50"], 1), "p99_assign_ms": round(figures["p99"], 1),
        "stored": figures["stored"], "assigned": figures["assigned"], "conversations": figures["conversations"],
        "max_agent_load": figures["max_load"], "errors": run["errors"],
    }
    result["ok"] = (figures["stored"] == figures["conversations"] == figures["assigned"] == args.messages
                    and run["errors"] == 0)
    print(f"omnidesk: {run['rate']:.0f} msgs/s stored (ack p50 {run['p50']:.1f} ms, p99 {run['p99']:.1f} ms); "
          f"{rate:.0f} msgs/s stored and assigned (inbound->assigned p50 {figures['p50']:.0f} ms, "
          f"p99 {figures['p99']:.0f} ms); {result['ratio_to_baseline']} of the baseline")
    print(f"stored {figures['stored']}, conversations {figures['conversations']}, assigned {figures['assigned']}, "
          f"busiest agent {figures['max_load']}, errors {run['errors']}")
    emit(result)
    return 0 if result["ok"] else 1


def _bodies(count: int, secret: str) -> list[tuple[bytes, str]]:
    import json

    from connectors.api import sign

    out = []
    for n in range(count):
        body = json.dumps({"message_id": f"bench-{n}", "from": {"id": f"customer-{n}", "name": f"Customer {n}"},
                           "text": f"Hola, on és la meva comanda {n}? Gràcies!"}).encode()
        out.append((body, sign(secret, body)))
    return out


def _setup(secret: str) -> int:
    from store.agents import create_agent
    from store.channels import create_channel
    from store.db import get_engine, upgrade

    upgrade()
    engine = get_engine()
    for n in range(AGENTS):
        create_agent(engine, name=f"Agent {n}", email=f"agent{n}@bench.example", capacity=1000, presence="online")
    return create_channel(engine, "api", "Bench shop", {"secret": secret, "callback_url": "http://127.0.0.1:9/none"})


async def _load(url: str, bodies: list[tuple[bytes, str]], concurrency: int) -> dict[str, Any]:
    """Post every body, ``concurrency`` at a time. aiohttp (already here through twilio) rather
    than httpx: the load generator shares the machine's two cores and must cost little."""
    import aiohttp

    latencies: list[float] = []
    failures: dict[str, int] = {}
    pending = iter(bodies)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def sender() -> None:
            for body, signature in pending:
                sent = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers={"X-Omnidesk-Signature": signature,
                                                                     "Content-Type": "application/json"}) as answer:
                        await answer.read()
                        failure = None if answer.status == 202 else f"HTTP {answer.status}"
                except (TimeoutError, aiohttp.ClientError) as exc:
                    failure = type(exc).__name__
                latencies.append((time.perf_counter() - sent) * 1000)
                if failure:
                    failures[failure] = failures.get(failure, 0) + 1

        began = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        seconds = time.perf_counter() - began
    if failures:
        print(f"failed posts: {failures}")
    return {"rate": len(bodies) / seconds, "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
            "errors": sum(failures.values()), "seconds": seconds}


def _wait_assigned(count: int, timeout: float) -> dict[str, Any]:
    """Wait until every conversation is assigned; the time of the last assignment ends the run."""
    from sqlalchemy import func, select

    from store.db import get_engine
    from store.sql import agents, assignments, conversations, messages

    engine = get_engine()
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            assigned = conn.execute(select(func.count()).select_from(conversations)
                                    .where(conversations.c.assignee_id.is_not(None))).scalar_one()
        if assigned >= count or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    with engine.connect() as conn:
        first_assignment = (
            select(assignments.c.conversation_id, func.min(assignments.c.created_at).label("at"))
            .group_by(assignments.c.conversation_id).subquery()
        )
        pairs = conn.execute(
            select(messages.c.created_at, first_assignment.c.at)
            .join(first_assignment, first_assignment.c.conversation_id == messages.c.conversation_id)
        ).all()
        stored = conn.execute(select(func.count()).select_from(messages)).scalar_one()
        conversations_made = conn.execute(select(func.count()).select_from(conversations)).scalar_one()
        max_load = conn.execute(select(func.max(agents.c.active_count))).scalar_one()
        first_stored = conn.execute(select(func.min(messages.c.created_at))).scalar_one()
        last_assigned = conn.execute(select(func.max(assignments.c.created_at))).scalar_one()
    waits = [(at - created).total_seconds() * 1000 for created, at in pairs]
    # The run lasts from the first message stored to the last assignment, both stamped by the
    # database writers on this machine's clock.
    seconds = (last_assigned - first_stored).total_seconds() if pairs else float("inf")
    return {"assigned": assigned, "stored": stored, "conversations": conversations_made, "max_load": max_load,
            "p50": percentile(waits, 50), "p99": percentile(waits, 99), "seconds": max(seconds, 1e-6)}


@contextlib.contextmanager
def _processes(commands: list[list[str]], env: dict[str, str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = [subprocess.Popen(cmd, env=env, cwd=os.getcwd(), start_new_session=True) for cmd in commands]
    try:
        yield procs
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _wait_healthy(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up within {timeout:g} s")


def _flush(redis_url: str, namespace: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{namespace}:*"))
    if keys:
        client.delete(*keys)


if __name__ == "__main__":
    raise SystemExit(main())
