"""Web chat under load: many widget visitors on ONE web process, their streams held open.

    python -m bench.webchat [--visitors 2000] [--senders 100] [--seconds 20]

As deployed: PostgreSQL (a scratch database), Redis for the broker, one ``omnidesk web`` process
(uvicorn). The client side costs little, so that what is measured is omnidesk: the visitors' event
streams (``GET /webchat/{id}/events``) are raw asyncio sockets read as bytes in two processes of their
own (``bench.stream_readers``, uvloop when installed), one admin's agent stream (``GET
/api/v1/events``) likewise in a third, and the sends are prepared HTTP/1.1 requests on keep-alive
connections from this process, paced on the clock (never queued behind a slow answer: a send with
no idle connection opens one). Measured:

- memory per idle visitor connection: the web process's RSS with every stream open and quiet,
  minus its RSS before the first stream (after the sessions were made), over ``--visitors``;
- then, for ``--seconds``, ``--senders`` visitors send one message a second each, spread evenly
  over the second (a message made in the browser's way: its own id), a tenth of them sent twice (a
  resend after a drop, which must answer ``duplicate``): for every message the time from just before
  its POST is written to its ``message.created`` read on the agent's stream; p50/p99 (target p99 <
  250 ms);
- none lost or doubled: every message arrives once on the agent's stream and once on its visitor's
  own stream, no visitor's stream carries another's message, and the database holds each once;
- the share of the machine's CPU each group of processes used in each phase (web, the stream
  readers, the sender, PostgreSQL, Redis, other: the machine is shared).

The last line of output is one JSON object. The baseline in the same run: the same sends (other
visitors, as many, as long) with only the agent's stream open, before the visitors' streams open.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import time
from typing import Any
from urllib.parse import quote

from bench.common import (
    DEFAULT_REDIS,
    CpuMeter,
    Processes,
    Readers,
    emit,
    flush_redis,
    free_port,
    percentile,
    print_table,
    scratch_database,
    stop_on_sigterm,
    use_database,
    wait_http,
)

ORIGIN = "http://shop.bench"


def rss_kb(pid: int) -> int:
    """Resident memory of a process and its children (uvicorn runs in the process itself)."""
    total = 0
    for candidate in [pid, *_children(pid)]:
        try:
            with open(f"/proc/{candidate}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def _run(coroutine: Any) -> Any:
    try:
        import uvloop

        loop_factory: Any = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coroutine)


# ---- raw HTTP/1.1 on keep-alive connections ----

_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


def post(port: int, path: str, body: dict[str, Any], headers: dict[str, str]) -> bytes:
    data = json.dumps(body).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {ORIGIN}\r\n{head}"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes]:
    """Send one request, read its answer (omnidesk's JSON answers carry a Content-Length)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    found = _LENGTH.search(head)
    body = await reader.readexactly(int(found.group(1))) if found else b""
    return int(head[9:12]), body


async def make_sessions(port: int, channel: int, count: int, connections: int = 16) -> list[str]:
    tokens: list[str] = [""] * count
    todo = iter(range(count))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for n in todo:
            status, body = await exchange(reader, writer, post(port, f"/webchat/{channel}/session", {}, {}))
            if status != 200:
                raise RuntimeError(f"session: {status} {body[:200]!r}")
            tokens[n] = json.loads(body)["token"]
        writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return tokens


async def paced_sends(port: int, channel: int, who: list[tuple[int, str]], seconds: float) -> dict[str, Any]:
    """``len(who)`` visitors send one message a second each for ``seconds``, evenly spread; a tenth
    of the messages are sent again once answered (on the same connection). Returns ``sent``
    (message id -> (wall clock just before the POST, visitor)), ``errors`` and the resends' count."""
    idle: list[tuple[float, tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = []
    sent: dict[int, tuple[float, int]] = {}
    errors: list[str] = []
    resent = [0]

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        # uvicorn closes a keep-alive connection idle for 5 s: one idle for 3 s is not reused
        while idle:
            used, connection = idle.pop()
            if time.monotonic() - used < 3:
                return connection
            connection[1].close()
        return await asyncio.open_connection("127.0.0.1", port)

    async def one(i: int, n: int, token: str) -> None:
        mid = secrets.token_hex(8)
        request = post(port, f"/webchat/{channel}/messages", {"id": mid, "text": f"bench {mid}"},
                       {"X-Omnidesk-Visitor": token})
        connection = await connect()
        try:
            start = time.time()
            status, body = await exchange(*connection, request)
            if status != 202:
                raise RuntimeError(f"{status} {body[:200]!r}")
            message_id = json.loads(body)["message_id"]
            sent[message_id] = (start, n)
            if i % 10 == 0:
                status, body = await exchange(*connection, request)
                again = json.loads(body)
                resent[0] += 1
                if status != 202 or again["duplicate"] is not True or again["message_id"] != message_id:
                    errors.append(f"a resend was stored again: {body[:200]!r}")
            idle.append((time.monotonic(), connection))
        except (OSError, asyncio.IncompleteReadError, RuntimeError, ValueError, KeyError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
            connection[1].close()

    tasks = []
    total = int(seconds * len(who))
    began = time.perf_counter()
    late = 0.0  # how far behind the clock a send started, at worst (the sender's own delay)
    for i in range(total):
        wait = began + i / len(who) - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        late = max(late, time.perf_counter() - (began + i / len(who)))
        n, token = who[i % len(who)]
        tasks.append(asyncio.create_task(one(i, n, token)))
    await asyncio.gather(*tasks)
    for _, (_, writer) in idle:
        writer.close()
    return {"sent": sent, "errors": errors, "resent": resent[0], "late_ms": round(late * 1000, 1)}


@contextlib.contextmanager
def cpu_share(into: dict[str, dict[str, float]], phase: str, groups: dict[str, set[int]]) -> Any:
    """The share of the machine's CPU each group of processes used during the block."""
    meter = CpuMeter(groups, {"PostgreSQL": "postgres", "Redis": "redis-server"})
    before = meter.read()
    yield
    spent = meter.spent(before, meter.read())
    spent["sender (this process)"] = spent.pop("this process", 0.0)
    total = spent.get("machine busy", 0.0) + spent.get("machine idle", 0.0)
    into[phase] = {k: round(v / total, 3) for k, v in spent.items() if total and k != "machine busy"}


def measure(procs: Processes, port: int, channel: int, admin: str, web_pid: int, visitors: int, senders: int,
            seconds: float) -> dict[str, Any]:
    tokens = _run(make_sessions(port, channel, visitors))
    time.sleep(1)
    before = rss_kb(web_pid)
    readers = Readers(procs)
    agent = readers.start("agent-stream", [("agent", port, f"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}"
                                                            f"\r\nAuthorization: Bearer {admin}\r\n"
                                                            "Accept: text/event-stream\r\n\r\n")])
    readers.wait_ready(30)
    groups: dict[str, set[int]] = {"web": {web_pid}, "agent stream": {agent.pid}, "visitor streams": set()}
    cpu: dict[str, dict[str, float]] = {}
    # baseline: the agent's stream alone, the last visitors sending
    with cpu_share(cpu, "baseline", groups):
        base = _run(paced_sends(port, channel, [(n, tokens[n]) for n in range(visitors - senders, visitors)], seconds))
    # every visitor's stream open, in two processes
    opening = time.perf_counter()
    halves = [list(range(visitors))[k::2] for k in range(2)]
    for k, half in enumerate(halves):
        proc = readers.start(f"visitor-streams-{k}", [
            (str(n), port, f"GET /webchat/{channel}/events?token={quote(tokens[n])} HTTP/1.1\r\n"
                           f"Host: 127.0.0.1:{port}\r\nOrigin: {ORIGIN}\r\nAccept: text/event-stream\r\n\r\n")
            for n in half])
        groups["visitor streams"].add(proc.pid)
    readers.wait_ready(300)
    open_seconds = time.perf_counter() - opening
    time.sleep(5)
    idle = rss_kb(web_pid)
    with cpu_share(cpu, "visitors", groups):
        load = _run(paced_sends(port, channel, [(n, tokens[n]) for n in range(senders)], seconds))
    time.sleep(3)  # the last events arrive
    received = readers.finish()

    agent_seen: dict[int, float] = {}
    agent_count: dict[int, int] = {}
    for mid, at in received.pop("agent"):
        agent_seen.setdefault(mid, at)
        agent_count[mid] = agent_count.get(mid, 0) + 1

    def latencies(sent: dict[int, tuple[float, int]]) -> list[float]:
        return [(agent_seen[mid] - start) * 1000 for mid, (start, _) in sent.items() if mid in agent_seen]

    lat, base_lat = latencies(load["sent"]), latencies(base["sent"])
    all_sent = {**base["sent"], **load["sent"]}
    mine = {mid: n for mid, (_, n) in load["sent"].items()}
    visitor_seen = {int(key): [mid for mid, _ in got] for key, got in received.items()}
    lost_visitor = [mid for mid, n in mine.items() if mid not in visitor_seen.get(n, [])]
    doubled_visitor = sum(len(seen) - len(set(seen)) for seen in visitor_seen.values())
    foreign = sum(1 for n, seen in visitor_seen.items() for mid in seen if mine.get(mid, n) != n)
    errors = base["errors"] + load["errors"]
    return {
        "visitors": visitors, "senders_per_s": senders, "seconds": seconds,
        "streams_open_s": round(open_seconds, 1), "visitor_streams_open": len(visitor_seen),
        "rss_before_kb": before, "rss_idle_kb": idle,
        "kb_per_idle_connection": round((idle - before) / visitors, 1),
        "messages": len(load["sent"]), "p50_ms": round(percentile(lat, 50), 1), "p99_ms": round(percentile(lat, 99), 1),
        "max_ms": round(max(lat, default=0), 1),
        "baseline_messages": len(base["sent"]), "baseline_p50_ms": round(percentile(base_lat, 50), 1),
        "baseline_p99_ms": round(percentile(base_lat, 99), 1),
        "resent": base["resent"] + load["resent"], "sender_late_ms": max(base["late_ms"], load["late_ms"]),
        "lost_agent": len([mid for mid in all_sent if mid not in agent_seen]),
        "doubled_agent": len([mid for mid, count in agent_count.items() if count > 1]),
        "lost_visitor": len(lost_visitor), "doubled_visitor": doubled_visitor, "foreign_visitor": foreign,
        "errors": len(errors), "first_errors": errors[:3], "cpu_share": cpu,
        "sent_ids": sorted(all_sent),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visitors", type=int, default=2000)
    parser.add_argument("--senders", type=int, default=100, help="visitors sending a message each second")
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args(argv)
    if args.senders * 2 > args.visitors:
        parser.error("--visitors must be at least twice --senders (the baseline's senders are others)")
    namespace = f"omnidesk-bench-{secrets.token_hex(4)}"
    load_before = os.getloadavg()
    with stop_on_sigterm(), scratch_database() as url:
        port = free_port()
        env = use_database(url, OMNIDESK_REDIS_URL=DEFAULT_REDIS, OMNIDESK_REDIS_NAMESPACE=namespace,
                           OMNIDESK_PUBLIC_URL=f"http://127.0.0.1:{port}", OMNIDESK_WEBCHAT_IP_RATE="100000000",
                           OMNIDESK_LOG_LEVEL="WARNING")
        from store.agents import admin_token
        from store.channels import create_channel
        from store.db import get_engine, upgrade

        upgrade()
        engine = get_engine()
        token = admin_token(engine)
        channel = create_channel(engine, "webchat", "bench", {"allowed_origins": [ORIGIN]})
        procs = Processes(env)
        try:
            web = procs.omnidesk("web", "web", "--host", "127.0.0.1", "--port", str(port))
            wait_http(f"http://127.0.0.1:{port}/healthz", 60, procs)
            result = measure(procs, port, channel, token, web.pid, args.visitors, args.senders, args.seconds)
            procs.check_alive()
        except BaseException:
            procs.show_logs()
            raise
        finally:
            procs.stop()
            flush_redis(DEFAULT_REDIS, namespace)
        from sqlalchemy import func, select

        from store.sql import messages

        sent_ids = result.pop("sent_ids")
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(messages)
                                  .where(messages.c.channel_id == channel, messages.c.direction == "in")).scalar_one()
        engine.dispose()
    result["stored"] = stored
    result["doubled_or_lost_in_db"] = stored - len(sent_ids)
    result["load_average"] = [round(v, 2) for v in load_before]
    result["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    result["p99_target_met"] = result["p99_ms"] < 250
    result["memory_target_met"] = result["kb_per_idle_connection"] < 50
    result["ok"] = not (result["errors"] or result["lost_agent"] or result["doubled_agent"] or result["lost_visitor"]
                        or result["doubled_visitor"] or result["foreign_visitor"] or result["doubled_or_lost_in_db"]
                        or result["visitor_streams_open"] != args.visitors)
    cpu = result["cpu_share"]
    labels = list(next(iter(cpu.values())))
    print_table("share of the machine's CPU", [["", *labels], *([phase, *(f"{v[k]:.0%}" for k in labels)]
                                                               for phase, v in cpu.items())])
    emit({"bench": "webchat", **result})
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
