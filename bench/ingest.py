"""Inbound throughput end to end: N signed posts to the API channel's webhook through the real
HTTP server into PostgreSQL, routed through Redis by worker processes, beside a baseline measured
in the same run.

    python -m bench.ingest [--messages 12000] [--concurrency 8,32,128]      (or: omnidesk bench ingest)

Both are measured at each load (requests in flight, ``--concurrency``), and each side's headline
is its best rate over the loads: its capacity. The two differ in where that is. The baseline does
one INSERT transaction a request, each on its own, so it is quickest with few requests in flight
and slows as more contend. omnidesk stores whatever requests wait in one transaction (group
commit, ``web.intake``), so each request waits for a commit of several statements: with few in
flight it is held back by that wait, not by the machine, and as more arrive the batches grow and
the cost a message falls. A provider sending 1,000 messages a second at ~75 ms an answer keeps
~75 requests in flight (Little's law): the load settles where the capacity is. Every load's
figures are printed and kept in the JSON (``loads``).

The database is a running shop's (``--history``, 20,000 resolved conversations by default, with
their customers, messages and assignments, then ANALYZE): on a database created empty for the
run, PostgreSQL plans on no statistics until autovacuum comes round, and those plans (a lookup by
channel and external id scanning the whole channel; in a one-thread store-and-route loop,
1,050-1,340 µs of PostgreSQL CPU per message against 650-670 with a history) are not the ones a
running shop gets. ``--history 0`` measures the empty database.

Processes, as deployed, each in a process group of its own, on one scratch database and a Redis
namespace of their own: ``--web-workers`` (2) ``omnidesk web`` processes (uvicorn), ``omnidesk
worker`` and ``omnidesk scheduler``. Each message comes from a different customer, so each opens a
conversation that the router must assign to one of 20 online agents (capacity to spare: nobody
queues). The load generator (:func:`bench.common.http_load`: prepared requests, signed in advance,
``--concurrency`` keep-alive connections split evenly between the web processes, as a load balancer
would) runs in this process, on the same two cores. Each web process listens on its own port:
with ``uvicorn --workers 2`` on one shared socket, Linux gave one worker most of the keep-alive
connections (32:0, 22:10, 17:15 in three runs), and runs differed by 1.5x.

Baseline, in the same run: the same requests against the least a webhook endpoint can do on the
same stack (:func:`baseline_app`): as many uvicorn processes, the same app class (webhook posts
as plain ASGI, ``web.asgi``), the same HMAC check,
one INSERT transaction through omnidesk's own engine (same pool, same psycopg), into a table of
the same database. Both run side by side and take turns, ``--rounds`` rounds each at each load,
alternating which goes first: the ratio of the two holds even when the machine's speed drifts during the run
(on the shared 2-core VM, the baseline alone varied from 1,030 to 1,420 msgs/s between runs).
``--warmup`` posts to each first (at the first load) are not measured.

Measured: the webhook's answer time (p50/p99); messages stored per second (first post to last
202); messages stored *and assigned* per second (first post to the last assignment); inbound-to-
assigned time per conversation (its message's created_at to its assignment's, both stamped by
the writers on this machine's clock); CPU time per message of each group of processes, read from
/proc. Then checked, over everything stored: each message once, one conversation each, each
assigned once, no agent over capacity and every agent's count right, no error answer. The exit
status is 1 when a check fails (missing the speed target is reported, not an error).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import secrets
import sys
import time
from datetime import UTC
from pathlib import Path
from typing import Any

import psycopg

if not __package__:  # run by path (python bench/x.py): import from the checkout, not from bench/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.common import (
    DEFAULT_PG,
    DEFAULT_REDIS,
    CpuMeter,
    Processes,
    emit,
    flush_redis,
    free_ports,
    http_load,
    http_requests,
    percentile,
    print_table,
    scratch_database,
    stop_on_sigterm,
    use_database,
    wait_http,
)

AGENTS = 20
TARGET_MSGS_PER_S = 1000.0
TARGET_RATIO = 0.5
CPU_GROUPS = ("web", "workers", "PostgreSQL", "this process", "other")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omnidesk bench ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=12_000,
                        help="measured posts to each, spread over the loads (default 12000)")
    parser.add_argument("--warmup", type=int, default=500, help="unmeasured posts first (default 500)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternating baseline/omnidesk rounds at each load (default 2)")
    parser.add_argument("--concurrency", type=_loads, default=[8, 32, 128],
                        help="requests in flight: one load or several, comma-separated (default 8,32,128)")
    parser.add_argument("--history", type=int, default=20_000,
                        help="resolved conversations the shop has already had (default 20000)")
    parser.add_argument("--web-workers", type=int, default=2, help="web server processes (default 2)")
    parser.add_argument("--workers", type=int, default=1, help="omnidesk worker processes (default 1)")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker process (default 8)")
    parser.add_argument("--database-url", default=DEFAULT_PG, help="PostgreSQL to make the scratch database in")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS, help=f"Redis (default {DEFAULT_REDIS})")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args(argv)
    parts = len(args.concurrency) * args.rounds
    if args.messages < 1 or args.warmup < 0 or args.web_workers < 1 or args.workers < 1 or args.history < 0 \
            or not 1 <= parts <= args.messages:
        parser.error("--messages, --web-workers, --workers and --rounds must be positive, --warmup and --history "
                     "not negative (and at most one round a message)")

    began = time.monotonic()
    secret = secrets.token_urlsafe(24)
    sizes = iter([args.messages // parts + (k < args.messages % parts) for k in range(parts)])
    plan = [(load, [_bodies(f"bench-c{load}-r{k}", next(sizes), secret) for k in range(args.rounds)])
            for load in args.concurrency]
    warmup = _bodies("warmup", args.warmup, secret)
    print(f"ingest: {args.messages:,} posts to each (after {args.warmup:,} to warm up) at "
          f"{', '.join(map(str, args.concurrency))} in flight, {args.rounds} alternating rounds at each; "
          f"{args.web_workers} web processes, {args.workers} worker process(es) x {args.threads} threads; "
          f"a history of {args.history:,} conversations")
    namespace = f"omnidesk-bench-{secrets.token_hex(4)}"
    try:
        _check_redis(args.redis_url)
        with stop_on_sigterm(), scratch_database(args.database_url, keep=args.keep) as url:
            env = use_database(url, OMNIDESK_REDIS_URL=args.redis_url, OMNIDESK_REDIS_NAMESPACE=namespace,
                               OMNIDESK_LOG_LEVEL="WARNING", OMNIDESK_WORKER_THREADS=str(args.threads),
                               OMNIDESK_BENCH_SECRET=secret)
            measured, checks = _measure(args, env, url, warmup, plan, secret)
    except KeyboardInterrupt:
        print("interrupted (processes stopped, scratch database dropped unless --keep)", file=sys.stderr)
        return 130
    except (RuntimeError, psycopg.OperationalError) as exc:
        print(f"bench ingest failed: {exc}", file=sys.stderr)
        return 2
    return _report(args, measured, checks, time.monotonic() - began)


def _loads(text: str) -> list[int]:
    try:
        loads = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number, or numbers separated by commas: {text!r}") from None
    if not loads or min(loads) < 1:
        raise argparse.ArgumentTypeError("requests in flight must be at least 1")
    return loads


def _bodies(prefix: str, count: int, secret: str) -> list[tuple[bytes, dict[str, str]]]:
    from connectors.api import sign

    out = []
    for n in range(count):
        body = json.dumps({"message_id": f"{prefix}-{n}", "from": {"id": f"{prefix}-customer-{n}",
                           "name": f"Customer {n}"}, "text": f"Hello, where is my order {n}? Thank you!"}).encode()
        out.append((body, {"Content-Type": "application/json", "X-Omnidesk-Signature": sign(secret, body)}))
    return out


def _check_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        raise RuntimeError(f"Redis at {url} does not answer: {exc}") from None


def _pg(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True)


def _sessions(conn: Any, settle: bool = False) -> int:
    """Connections made to the database so far (PostgreSQL publishes the count within a second)."""
    if settle:
        time.sleep(1.1)
    return conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()").fetchone()[0]


# -- the baseline --------------------------------------------------------------------------------

def _baseline_table() -> Any:
    from sqlalchemy import BigInteger, Column, DateTime, LargeBinary, MetaData, String, Table

    return Table("bench_baseline", MetaData(), Column("id", BigInteger, primary_key=True),
                 Column("external_id", String(400), unique=True, nullable=False),
                 Column("sender", String(400), nullable=False), Column("text", String, nullable=False),
                 Column("raw", LargeBinary, nullable=False), Column("created_at", DateTime, nullable=False))


def baseline_app() -> Any:
    """The bare endpoint, a uvicorn factory, on omnidesk's own stack (``web.app.App``: webhook
    posts as plain ASGI, past FastAPI's routing): check the signature, one INSERT transaction,
    202."""
    import hmac
    import os

    from sqlalchemy.dialects.postgresql import insert
    from starlette.concurrency import run_in_threadpool

    from connectors.api import sign
    from store.db import get_engine
    from store.models import utcnow
    from web import asgi
    from web.app import App

    engine, table, secret = get_engine(), _baseline_table(), os.environ["OMNIDESK_BENCH_SECRET"]

    def store(body: bytes) -> None:
        data = json.loads(body)
        with engine.begin() as conn:
            conn.execute(insert(table).on_conflict_do_nothing().values(
                external_id=data["message_id"], sender=data["from"]["id"], text=data["text"], raw=body,
                created_at=utcnow()))

    async def webhook(channel_id: int, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        body = await asgi.read_body(receive, 5 * 1024 * 1024)
        given = asgi.headers(scope).get("x-omnidesk-signature", "")
        if not hmac.compare_digest(given.encode(), sign(secret, body).encode()):
            await asgi.send_json(send, 401, {"detail": "missing or invalid X-Omnidesk-Signature"})
            return
        await run_in_threadpool(store, body)
        await asgi.send_json(send, 202, {"stored": 1, "duplicates": 0})

    app = App(webhook_handler=webhook)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


# -- the history ---------------------------------------------------------------------------------

_HISTORY = """
WITH past AS (
  SELECT g, now() at time zone 'utc' - make_interval(mins => g) AS at FROM generate_series(1, %(count)s) g
), people AS (
  INSERT INTO contacts (name, created_at) SELECT 'Past customer ' || g, at FROM past RETURNING id, created_at
), known AS (
  INSERT INTO contact_identities (contact_id, channel_id, external_id, created_at)
  SELECT id, %(channel)s, 'past-customer-' || id, created_at FROM people RETURNING contact_id
)
INSERT INTO conversations (channel_id, contact_id, status, last_assignee_id, priority, thread_key, needs_routing,
                           route_attempts, first_response_at, resolved_at, last_message_at, created_at, updated_at)
SELECT %(channel)s, id, 'resolved', 1 + id %% %(agents)s, 0, 'past-customer-' || id, false, 0,
       created_at + interval '2 minutes', created_at + interval '1 hour', created_at + interval '2 minutes',
       created_at, created_at + interval '1 hour'
FROM people;
INSERT INTO messages (conversation_id, channel_id, direction, sender_contact_id, author_agent_id, text, private,
                      automatic, external_id, status, attempts, raw, sent_at, created_at)
SELECT id, channel_id, d.direction, CASE WHEN d.direction = 'in' THEN contact_id END,
       CASE WHEN d.direction = 'out' THEN last_assignee_id END,
       CASE WHEN d.direction = 'in' THEN 'Hello, where is my order?' ELSE 'It left our warehouse today.' END,
       false, false, 'past-' || d.direction || '-' || id, CASE WHEN d.direction = 'in' THEN 'received' ELSE 'sent' END,
       0, CASE WHEN d.direction = 'in' THEN convert_to('{"text": "Hello, where is my order?"}', 'UTF8') END,
       CASE WHEN d.direction = 'out' THEN created_at + interval '2 minutes' END, created_at
FROM conversations, (VALUES ('in'), ('out')) AS d(direction);
INSERT INTO assignments (conversation_id, agent_id, reason, created_at)
SELECT id, last_assignee_id, 'routed', created_at FROM conversations
UNION ALL SELECT id, NULL, 'resolved', resolved_at FROM conversations;
INSERT INTO bench_baseline (external_id, sender, text, raw, created_at)
SELECT 'past-' || g, 'past-customer-' || g, 'Hello, where is my order?',
       convert_to('{"text": "Hello, where is my order?"}', 'UTF8'), now() at time zone 'utc'
FROM generate_series(1, 2 * %(count)s) g;
ANALYZE;
"""


def seed_history(url: str, channel_id: int, agents: int, count: int) -> None:
    """A shop that has been running: ``count`` resolved conversations, each with a customer, a
    message in and a reply out, and their assignments; as many rows in the baseline's table as
    messages here. Then ANALYZE, as autovacuum would have by now: a database created empty for
    the run has no statistics, and plans made on none are not the plans a running shop gets."""
    with _pg(url) as conn:
        for statement in _HISTORY.split(";\n"):
            if statement.strip():
                conn.execute(statement, {"count": count, "channel": channel_id, "agents": agents})


# -- the measurement -----------------------------------------------------------------------------

def _measure(args: argparse.Namespace, env: dict[str, str], url: str, warmup: list[Any],
             plan: list[tuple[int, list[list[Any]]]], secret: str
             ) -> tuple[list[tuple[int, dict[str, Any], dict[str, Any]]], dict[str, Any]]:
    """Both servers run side by side; at each load the rounds alternate between them (baseline
    first in even rounds, omnidesk first in odd ones), so a machine that speeds up or slows down
    during the run weighs on both alike. Idle meanwhile, omnidesk's worker still polls Redis: that
    lands in the baseline's "other" CPU. Returns each load's tallies, and the checks."""
    from store.agents import create_agent
    from store.channels import create_channel
    from store.db import get_engine, upgrade

    upgrade()
    engine = get_engine()
    _baseline_table().create(engine)
    total = len(warmup) + sum(len(bodies) for _, rounds in plan for bodies in rounds)
    capacity = max(1000, -(-2 * total // AGENTS))  # room for everyone: the queue is not measured here
    for n in range(AGENTS):
        create_agent(engine, name=f"Agent {n}", email=f"agent{n}@bench.example", capacity=capacity,
                     presence="online")
    channel_id = create_channel(engine, "api", "Bench shop",
                                {"secret": secret, "callback_url": "http://127.0.0.1:9/unused"})
    if args.history:
        seed_history(url, channel_id, AGENTS, args.history)
    engine.dispose()
    ports = free_ports(2 * args.web_workers)
    base_ports, web_ports, path = ports[:args.web_workers], ports[args.web_workers:], f"/webhooks/{channel_id}"
    procs = Processes({**env, "OMNIDESK_PUBLIC_URL": f"http://127.0.0.1:{web_ports[0]}"})
    try:
        baseline = {procs.start(f"baseline-{n}", "-m", "uvicorn", "bench.ingest:baseline_app", "--factory",
                                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning").pid
                    for n, port in enumerate(base_ports)}
        web = {procs.omnidesk(f"web-{n}", "web", "--host", "127.0.0.1", "--port", str(port)).pid
               for n, port in enumerate(web_ports)}
        workers = {procs.omnidesk("scheduler", "scheduler").pid}
        workers |= {procs.omnidesk(f"worker-{n}", "worker", "--threads", str(args.threads)).pid
                    for n in range(args.workers)}
        for port in ports:
            wait_http(f"http://127.0.0.1:{port}/healthz", 60, procs)
        with _pg(url) as conn:
            first = plan[0][0]
            http_load(base_ports, http_requests("/webhooks/1", warmup), first)
            warm = http_load(web_ports, http_requests(path, warmup), first)
            _wait_assigned(conn, len(warmup), 60, procs)
            measured = []
            errors, statuses = warm["errors"], collections.Counter(warm["statuses"])
            done = len(warmup)
            for load, rounds in plan:
                base, run = _tally(), _tally()
                for k, bodies in enumerate(rounds):
                    for who in (("baseline", "omnidesk") if k % 2 == 0 else ("omnidesk", "baseline")):
                        if who == "baseline":
                            meter = CpuMeter({"web": baseline}, {"PostgreSQL": "postgres"})
                            before, sessions = meter.read(), _sessions(conn)
                            answered = http_load(base_ports, http_requests("/webhooks/1", bodies), load)
                            _add(base, answered, meter.spent(before, meter.read()),
                                 _sessions(conn, settle=True) - sessions)
                            continue
                        meter = CpuMeter({"web": web, "workers": workers}, {"PostgreSQL": "postgres"})
                        before, sessions = meter.read(), _sessions(conn)
                        answered = http_load(web_ports, http_requests(path, bodies), load)
                        done += len(bodies)
                        _wait_assigned(conn, done, max(30.0, len(bodies) / 100), procs)
                        spent = meter.spent(before, meter.read())
                        figures = _figures(conn, answered["began"], f"bench-c{load}-r{k}-")
                        _add(run, answered, spent, _sessions(conn, settle=True) - sessions)
                        run["assign_seconds"] += figures["assign_seconds"]
                        run["assigned"] += figures["assigned"]
                        run["waits"] += figures["waits"]
                for tally in (base, run):
                    tally.update(messages=sum(map(len, rounds)), rate=len(tally["latencies"]) / tally["seconds"],
                                 p50=percentile(tally["latencies"], 50), p99=percentile(tally["latencies"], 99))
                run.update(assign_p50=percentile(run["waits"], 50), assign_p99=percentile(run["waits"], 99),
                           end_to_end=run["messages"] / run["assign_seconds"]
                           if run["assigned"] == run["messages"] else 0.0)
                measured.append((load, base, run))
            checks = _checks(conn)
            checks["baseline_stored"] = conn.execute(
                "SELECT count(*) FROM bench_baseline WHERE external_id LIKE 'bench-%'").fetchone()[0]
            checks["errors"] = errors + sum(b["errors"] + r["errors"] for _, b, r in measured)
            checks["statuses"] = {"baseline": sum((b["statuses"] for _, b, _ in measured), collections.Counter()),
                                  "omnidesk": sum((r["statuses"] for _, _, r in measured), statuses)}
        return measured, checks
    except Exception:
        procs.show_logs()
        raise
    finally:
        procs.stop()
        with contextlib.suppress(Exception):
            flush_redis(args.redis_url, env["OMNIDESK_REDIS_NAMESPACE"])


def _tally() -> dict[str, Any]:
    return {"seconds": 0.0, "latencies": [], "errors": 0, "statuses": collections.Counter(), "sessions": 0,
            "cpu": collections.Counter(), "assign_seconds": 0.0, "assigned": 0, "waits": []}


def _add(tally: dict[str, Any], load: dict[str, Any], cpu: dict[str, float], sessions: int) -> None:
    """One round's figures into the run's."""
    tally["seconds"] += load["seconds"]
    tally["latencies"] += load["latencies"]
    tally["errors"] += load["errors"]
    tally["statuses"].update(load["statuses"])
    tally["cpu"].update(cpu)
    tally["sessions"] += sessions


def _wait_assigned(conn: Any, count: int, timeout: float, procs: Processes) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if conn.execute("SELECT count(*) FROM conversations WHERE assignee_id IS NOT NULL").fetchone()[0] >= count:
            return
        procs.check_alive()
        time.sleep(0.05)
    print(f"not every conversation was assigned within {timeout:g} s", file=sys.stderr)


# Over what the run stored: the history (seed_history) is told apart by its ids.
_CHECKS = """WITH run_messages AS (
  SELECT * FROM messages WHERE direction = 'in' AND external_id NOT LIKE 'past-%'
), run_conversations AS (
  SELECT * FROM conversations WHERE coalesce(thread_key, '') NOT LIKE 'past-%'
) SELECT
  (SELECT count(*) FROM run_messages),
  (SELECT count(DISTINCT (channel_id, external_id)) FROM run_messages),
  (SELECT count(*) FROM run_conversations),
  (SELECT count(*) FROM run_conversations WHERE assignee_id IS NOT NULL),
  (SELECT count(*) FROM (SELECT 1 FROM assignments WHERE conversation_id IN (SELECT id FROM run_conversations)
                         GROUP BY conversation_id HAVING count(*) > 1) twice),
  (SELECT count(*) FROM agents WHERE active_count > capacity),
  (SELECT count(*) FROM agents a
    WHERE active_count <> (SELECT count(*) FROM conversations c WHERE c.assignee_id = a.id)),
  (SELECT count(*) FROM run_messages WHERE external_id LIKE 'bench-%')"""


def _figures(conn: Any, started: float, prefix: str) -> dict[str, Any]:
    """One round's conversations: inbound-to-assigned times, and the time from its first post to
    its last assignment."""
    pairs = conn.execute(
        "SELECT m.created_at, min(a.created_at) FROM messages m"
        " JOIN assignments a ON a.conversation_id = m.conversation_id AND a.reason = 'routed'"
        " WHERE m.external_id LIKE %s GROUP BY m.id", (prefix + "%",)
    ).fetchall()
    waits = [(at - created).total_seconds() * 1000 for created, at in pairs]
    last = max((at for _, at in pairs), default=None)
    # the last assignment, stamped by a worker, on the clock the first post was read from
    return {"waits": waits, "assigned": len(pairs),
            "assign_seconds": last.replace(tzinfo=UTC).timestamp() - started if last else float("inf")}


def _checks(conn: Any) -> dict[str, Any]:
    """The checks over everything stored."""
    row = conn.execute(_CHECKS).fetchone()
    return {"total_stored": row[0], "duplicates": row[0] - row[1], "conversations": row[2], "total_assigned": row[3],
            "assigned_twice": row[4], "over_capacity": row[5], "count_mismatch": row[6], "stored": row[7]}


# -- the report ----------------------------------------------------------------------------------

def _report(args: argparse.Namespace, measured: list[tuple[int, dict[str, Any], dict[str, Any]]],
            checks: dict[str, Any], seconds: float) -> int:
    """Each load's figures side by side; then the headline: each side's best rate over the loads
    (its capacity), and the ratio of the two."""
    def per_message(tally: dict[str, Any], label: str) -> Any:
        return tally["cpu"][label] * 1e6 / tally["messages"] if label in tally["cpu"] else "-"

    def both(figure: Any) -> list[str]:
        return [f"{_num(figure(b))} / {_num(figure(r))}" for _, b, r in measured]

    print_table("", [
        ["in flight", *(str(load) for load, _, _ in measured)],
        ["baseline msgs/s (202 answered)", *(b["rate"] for _, b, _ in measured)],
        ["omnidesk msgs/s stored (202 answered)", *(r["rate"] for _, _, r in measured)],
        ["omnidesk msgs/s stored and assigned", *(r["end_to_end"] for _, _, r in measured)],
        ["ratio to the baseline", *(r["end_to_end"] / b["rate"] for _, b, r in measured)],
        ["webhook answer p50 ms, baseline / omnidesk", *both(lambda t: t["p50"])],
        ["webhook answer p99 ms, baseline / omnidesk", *both(lambda t: t["p99"])],
        ["inbound -> assigned p50 ms", *(r["assign_p50"] for _, _, r in measured)],
        ["inbound -> assigned p99 ms", *(r["assign_p99"] for _, _, r in measured)],
        *([f"CPU µs a message, {label}: baseline / omnidesk", *both(lambda t, label=label: per_message(t, label))]
          for label in CPU_GROUPS),
        ["PostgreSQL connections opened, baseline / omnidesk", *both(lambda t: t["sessions"])],
    ])
    total = args.messages + args.warmup
    passed = {
        "every message stored once": checks["total_stored"] == total and checks["duplicates"] == 0,
        "one conversation each": checks["conversations"] == total,
        "every conversation assigned, once": checks["total_assigned"] == total and checks["assigned_twice"] == 0,
        "no agent over capacity, every count right": checks["over_capacity"] == 0 and checks["count_mismatch"] == 0,
        "no error answers": checks["errors"] == 0,
        "baseline stored every message": checks["baseline_stored"] == args.messages,
    }
    for check, ok in passed.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {check}")
    if checks["errors"]:
        print(f"  answers (status: count): {checks['statuses']}")
    load, _, run = max(measured, key=lambda m: m[2]["end_to_end"])
    base_load, base, _ = max(measured, key=lambda m: m[1]["rate"])
    rate, ratio = run["end_to_end"], run["end_to_end"] / base["rate"] if base["rate"] else 0.0
    met = rate >= TARGET_MSGS_PER_S and ratio >= TARGET_RATIO
    print(f"best: omnidesk {rate:,.0f} msgs/s end to end (at {load} in flight), the baseline {base['rate']:,.0f} "
          f"(at {base_load}): {ratio:.2f} of the baseline; target (>= {TARGET_MSGS_PER_S:,.0f} msgs/s and >= "
          f"{TARGET_RATIO} of the baseline) {'met' if met else 'NOT met'}; the run took {seconds:.0f} s")

    def figures(load: int, base: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
        return {
            "concurrency": load, "msgs_per_s": round(run["end_to_end"], 1), "stored_msgs_per_s": round(run["rate"], 1),
            "baseline_msgs_per_s": round(base["rate"], 1),
            "ratio_to_baseline": round(run["end_to_end"] / base["rate"], 3) if base["rate"] else 0.0,
            "p50_ack_ms": round(run["p50"], 1), "p99_ack_ms": round(run["p99"], 1),
            "baseline_p50_ack_ms": round(base["p50"], 1), "baseline_p99_ack_ms": round(base["p99"], 1),
            "p50_assign_ms": round(run["assign_p50"], 1), "p99_assign_ms": round(run["assign_p99"], 1),
            "cpu_us_per_msg": {label: round(per_message(run, label)) for label in CPU_GROUPS},
            "baseline_cpu_us_per_msg": {label: round(per_message(base, label)) for label in CPU_GROUPS
                                        if label in base["cpu"]},
            "pg_connections_opened": run["sessions"],
        }

    result = {
        "bench": "ingest", "messages": args.messages, "rounds": args.rounds, "history": args.history,
        "web_workers": args.web_workers, "workers": args.workers, "threads": args.threads,
        # the headline: each side at its best load
        "concurrency": load, "baseline_concurrency": base_load,
        "msgs_per_s": round(rate, 1), "baseline_msgs_per_s": round(base["rate"], 1),
        "ratio_to_baseline": round(ratio, 3),
        "p99_ack_ms": round(run["p99"], 1), "p99_assign_ms": round(run["assign_p99"], 1),
        "loads": [figures(*m) for m in measured],
        "stored": checks["stored"], "duplicates": checks["duplicates"], "over_capacity": checks["over_capacity"],
        "errors": checks["errors"], "seconds": round(seconds, 1), "target_met": met, "ok": all(passed.values()),
    }
    emit(result)
    return 0 if result["ok"] else 1


def _num(value: Any) -> str:
    return f"{value:,.0f}" if isinstance(value, (int, float)) else str(value)


if __name__ == "__main__":
    raise SystemExit(main())
