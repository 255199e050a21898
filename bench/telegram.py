"""The Telegram channel under load, as deployed (``omnidesk web`` x2, ``worker``, ``scheduler``, on a
scratch PostgreSQL database and Redis), against the stand-in Bot API (tests/fakes/telegram.py) run
in this process.

    python -m bench.telegram [--updates 3000] [--concurrency 32] [--rounds 2] [--replies 1000] [--chats 100]

1. **In.** Telegram updates posted to the channel's webhook (with the secret token header, as
   Telegram posts them; each from a new chat, so each opens a conversation to route) beside signed
   posts to an API channel on the same processes: the baseline, measured in the same run. The two
   take turns, ``--rounds`` rounds each, alternating which goes first, at ``--concurrency``
   requests in flight (the load generator of bench.common); a rate is messages answered 202 (stored:
   the webhook answers after its commit) per second. Then every fifth update is posted again
   (Telegram redelivers what it thinks unacknowledged): none may be stored twice.
   ``ratio_to_api_channel`` = Telegram's rate / the API channel's.
2. **Out.** Once the worker has routed every conversation the first phase opened
   (``routing_backlog_s``: until then its threads are busy with that), ``--replies`` replies by
   the API to the first ``--chats`` of those conversations (the same number each), delivered
   by the worker through the stand-in, which enforces Telegram's flood limits (more than 30
   sends in any second for the bot, or two to one chat within 0.9 s: 429). Measured at the
   stand-in: sends a second from the first to the last (``outbound_rate_ratio`` = that / 30, the
   bot's limit), 429s answered (``provider_429s``), replies never received
   (``lost``) or received twice (``duplicates``, with the inbound doubles); and the sends counted
   in each second (``sends_each_second``), where the ramp shows.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

if not __package__:  # run by path (python bench/x.py): import from the checkout, not from bench/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.common import (
    DEFAULT_PG,
    DEFAULT_REDIS,
    Processes,
    emit,
    flush_redis,
    free_ports,
    http_load,
    http_load_apart,
    http_requests,
    percentile,
    print_table,
    scratch_database,
    stop_on_sigterm,
    use_database,
    wait_http,
)

AGENTS = 20
BOT_LIMIT = 30.0  # sends a second Telegram allows a bot (the stand-in's limit)
TARGET_RATIO, TARGET_RATE_RATIO = 0.8, 0.9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.telegram", description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=3000, help="measured posts to each channel (default 3000)")
    parser.add_argument("--warmup", type=int, default=300, help="unmeasured posts to each first (default 300)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (default 2)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    parser.add_argument("--replies", type=int, default=1000, help="replies sent (default 1000)")
    parser.add_argument("--chats", type=int, default=100, help="chats the replies go to (default 100)")
    parser.add_argument("--web-workers", type=int, default=2, help="web server processes (default 2)")
    parser.add_argument("--threads", type=int, default=8, help="threads of the worker process (default 8)")
    parser.add_argument("--database-url", default=DEFAULT_PG, help="PostgreSQL to make the scratch database in")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS, help=f"Redis (default {DEFAULT_REDIS})")
    args = parser.parse_args(argv)
    if min(args.updates, args.rounds, args.concurrency, args.replies, args.chats) < 1 \
            or args.chats > args.updates or args.rounds > args.updates:
        parser.error("every count must be positive, --chats and --rounds at most --updates")
    began = time.monotonic()
    namespace = f"omnidesk-bench-{secrets.token_hex(4)}"
    print(f"telegram: {args.updates:,} updates and as many API posts (after {args.warmup} each to warm up), "
          f"{args.rounds} alternating rounds at {args.concurrency} in flight; then {args.replies:,} replies "
          f"to {args.chats} chats")
    try:
        with stop_on_sigterm(), scratch_database(args.database_url) as url:
            env = use_database(url, OMNIDESK_REDIS_URL=args.redis_url, OMNIDESK_REDIS_NAMESPACE=namespace,
                               OMNIDESK_LOG_LEVEL="WARNING", OMNIDESK_WORKER_THREADS=str(args.threads))
            try:
                result = _run(args, env, url)
            finally:
                with contextlib.suppress(Exception):
                    flush_redis(args.redis_url, namespace)
    except KeyboardInterrupt:
        print("interrupted (processes stopped, scratch database dropped)", file=sys.stderr)
        return 130
    except (RuntimeError, psycopg.OperationalError) as exc:
        print(f"bench telegram failed: {exc}", file=sys.stderr)
        return 2
    result["seconds"] = round(time.monotonic() - began, 1)
    emit(result)
    return 0 if result["lost"] == 0 and result["duplicates"] == 0 else 1


def _update(chat: int, message_id: int) -> dict[str, Any]:
    return {"update_id": chat * 10 + message_id, "message": {
        "message_id": message_id, "date": 1764374400, "text": f"Hola! On és la meva comanda {chat}? Gràcies!",
        "from": {"id": chat, "is_bot": False, "first_name": "Client", "last_name": str(chat), "language_code": "ca"},
        "chat": {"id": chat, "first_name": "Client", "last_name": str(chat), "type": "private"}}}


def _telegram_bodies(first_chat: int, count: int, secret: str) -> list[tuple[bytes, dict[str, str]]]:
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": secret}
    return [(json.dumps(_update(first_chat + n, 1)).encode(), headers) for n in range(count)]


def _api_bodies(prefix: str, count: int, secret: str) -> list[tuple[bytes, dict[str, str]]]:
    from connectors.api import sign

    out = []
    for n in range(count):
        body = json.dumps({"message_id": f"{prefix}-{n}", "from": {"id": f"{prefix}-customer-{n}",
                           "name": f"Customer {n}"}, "text": f"Hola! On és la meva comanda {n}? Gràcies!"}).encode()
        out.append((body, {"Content-Type": "application/json", "X-Omnidesk-Signature": sign(secret, body)}))
    return out


def _run(args: argparse.Namespace, env: dict[str, str], url: str) -> dict[str, Any]:
    from store.agents import admin_token, create_agent
    from store.channels import create_channel
    from store.db import get_engine, upgrade
    from tests.fakes.telegram import FakeTelegram

    fake = FakeTelegram(bot_rate=int(BOT_LIMIT))
    token = fake.add_bot("bench_bot", "Bench shop")
    api_secret, hook_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
    upgrade()
    engine = get_engine()
    for n in range(AGENTS):
        create_agent(engine, name=f"Agent {n}", email=f"agent{n}@bench.example", capacity=100_000, presence="online")
    api_id = create_channel(engine, "api", "Shop backend", {"secret": api_secret, "callback_url": "http://127.0.0.1:9/"})
    bot_id = create_channel(engine, "telegram", "Shop bot", {
        "bot_token": token, "api_base_url": fake.url, "mode": "webhook", "webhook_secret": hook_secret})
    admin = admin_token(engine)
    engine.dispose()
    ports = free_ports(args.web_workers)
    procs = Processes({**env, "OMNIDESK_PUBLIC_URL": f"http://127.0.0.1:{ports[0]}"})
    try:
        for n, port in enumerate(ports):
            procs.omnidesk(f"web-{n}", "web", "--host", "127.0.0.1", "--port", str(port))
        procs.omnidesk("scheduler", "scheduler")
        procs.omnidesk("worker", "worker", "--threads", str(args.threads))
        for port in ports:
            wait_http(f"http://127.0.0.1:{port}/healthz", 60, procs)
        inbound = _inbound(args, ports, api_id, bot_id, api_secret, hook_secret, url)
        outbound = _outbound(args, ports, admin, url, fake, token, procs)
    except Exception:
        procs.show_logs()
        raise
    finally:
        procs.stop()
        fake.close()
    return {"bench": "telegram", **inbound, **outbound,
            "duplicates": inbound["inbound_duplicates"] + outbound["outbound_duplicates"]}


def _inbound(args: argparse.Namespace, ports: list[int], api_id: int, bot_id: int, api_secret: str,
             hook_secret: str, url: str) -> dict[str, Any]:
    api_path, bot_path = f"/webhooks/{api_id}", f"/webhooks/{bot_id}"
    http_load(ports, http_requests(api_path, _api_bodies("warmup", args.warmup, api_secret)), args.concurrency)
    http_load(ports, http_requests(bot_path, _telegram_bodies(900_000_000, args.warmup, hook_secret)),
              args.concurrency)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
    sizes = [args.updates // args.rounds + (k < args.updates % args.rounds) for k in range(args.rounds)]
    tally = {side: {"seconds": 0.0, "count": 0, "latencies": [], "errors": 0} for side in ("api", "telegram")}
    sent_updates: list[tuple[bytes, dict[str, str]]] = []
    chat = 1_000_000
    for k, size in enumerate(sizes):
        for side in (("api", "telegram") if k % 2 == 0 else ("telegram", "api")):
            if side == "api":
                bodies = _api_bodies(f"bench-r{k}", size, api_secret)
                answered = http_load(ports, http_requests(api_path, bodies), args.concurrency)
            else:
                bodies = _telegram_bodies(chat, size, hook_secret)
                chat += size
                sent_updates += bodies
                answered = http_load(ports, http_requests(bot_path, bodies), args.concurrency)
            t = tally[side]
            t["seconds"] += answered["seconds"]
            t["count"] += size
            t["latencies"] += answered["latencies"]
            t["errors"] += answered["errors"]
    again = http_load(ports, http_requests(bot_path, sent_updates[::5]), args.concurrency)  # redelivered
    rates = {side: t["count"] / t["seconds"] for side, t in tally.items()}
    with psycopg.connect(url, autocommit=True) as conn:
        stored, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT external_id) FROM messages WHERE channel_id = %s AND direction = 'in' "
            "AND external_id NOT LIKE '900%%'", [bot_id]).fetchone()
    print_table("in: messages stored a second (answered 202)", [
        ["", "API channel", "Telegram"],
        ["msgs/s", f"{rates['api']:.0f}", f"{rates['telegram']:.0f}"],
        ["p50 ms", *(f"{percentile(tally[s]['latencies'], 50):.1f}" for s in ("api", "telegram"))],
        ["p99 ms", *(f"{percentile(tally[s]['latencies'], 99):.1f}" for s in ("api", "telegram"))],
        ["errors", tally["api"]["errors"], tally["telegram"]["errors"] + again["errors"]],
    ])
    return {"ratio_to_api_channel": round(rates["telegram"] / rates["api"], 3),
            "msgs_per_s": round(rates["telegram"], 1), "api_msgs_per_s": round(rates["api"], 1),
            "inbound_stored": stored, "inbound_lost": len(sent_updates) - distinct,
            "inbound_duplicates": stored - distinct,
            "inbound_errors": tally["telegram"]["errors"] + again["errors"]}


def _routed(url: str, procs: Processes) -> float:
    """Seconds until the worker has routed every conversation the inbound phase opened (thousands
    may still wait when it ends): the outbound phase measures the sends, not that backlog, which
    the same worker threads would be working off meanwhile."""
    began = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        while conn.execute("SELECT count(*) FROM conversations WHERE assignee_id IS NULL").fetchone()[0]:
            if time.monotonic() - began > 300:
                raise RuntimeError("the inbound phase's conversations were not all routed within 300 s")
            procs.check_alive()
            time.sleep(0.2)
    return round(time.monotonic() - began, 1)


def _outbound(args: argparse.Namespace, ports: list[int], admin: str, url: str, fake: Any, token: str,
              procs: Processes) -> dict[str, Any]:
    routing_backlog_s = _routed(url, procs)
    with psycopg.connect(url, autocommit=True) as conn:
        conversations = [r[0] for r in conn.execute(
            "SELECT c.id FROM conversations c JOIN channels ch ON ch.id = c.channel_id WHERE ch.kind = 'telegram' "
            "AND c.thread_key LIKE 'telegram:1%%' ORDER BY c.id LIMIT %s", [args.chats])]
    with psycopg.connect(url, autocommit=True) as conn:  # the chats' messages, which Telegram numbers per chat
        for external_id, in conn.execute("SELECT external_id FROM messages WHERE direction = 'in' "
                                         "AND external_id LIKE '1%%:%%'"):
            chat, _, message_id = external_id.partition(":")
            fake.note_message(token, int(chat), int(message_id))
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {admin}"}
    texts, requests = [], []
    for n in range(args.replies):  # round-robin over the chats, as agents answering many customers would
        conversation = conversations[n % len(conversations)]
        text = f"Resposta {n} per a la conversa {conversation}"
        texts.append(text)
        requests += http_requests(f"/api/v1/conversations/{conversation}/messages",
                                  [(json.dumps({"text": text}).encode(), headers)])
    answered = http_load_apart(ports, requests, 16)  # the stand-in stamps arrivals in this process
    deadline = time.monotonic() + max(120.0, 3 * args.replies / BOT_LIMIT)
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            pending = conn.execute("SELECT count(*) FROM messages WHERE direction = 'out' "
                                   "AND status NOT IN ('sent', 'failed')").fetchone()[0]
            if not pending:
                break
            procs.check_alive()
            time.sleep(0.2)
        statuses = dict(conn.execute("SELECT status, count(*) FROM messages WHERE direction = 'out' GROUP BY status"))
        reasons = collections.Counter(r[0] for r in conn.execute(
            "SELECT status_reason FROM messages WHERE direction = 'out' AND status = 'failed'"))
    sent = fake.bots[token].sent
    received = collections.Counter(s.get("text") for s in sent)
    times = sorted(s["at"] for s in sent)
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    per_second = collections.Counter(int(t - times[0]) for t in times)
    profile = [per_second[n] for n in range(int(times[-1] - times[0]) + 1)] if times else []
    lost = sum(1 for t in texts if not received[t])
    doubles = sum(n - 1 for t, n in received.items() if n > 1)
    print_table(f"out: {args.replies} replies to {len(conversations)} chats through the stand-in's flood limits", [
        ["sends/s", f"{rate:.1f}", f"limit {BOT_LIMIT:g}"],
        ["429s", fake.too_many, json.dumps(fake.refusals)],
        ["statuses", json.dumps(statuses), f"API errors {answered['errors']}"],
        ["lost / twice", lost, doubles],
        ["sends each second", " ".join(map(str, profile)), f"replies made in {answered['seconds']:.1f} s"],
        *(["failed", n, reason] for reason, n in reasons.items()),
    ])
    return {"outbound_rate_ratio": round(rate / BOT_LIMIT, 3), "sends_per_s": round(rate, 2),
            "routing_backlog_s": routing_backlog_s, "sends_each_second": profile,
            "429s_in_second": [int(t - times[0]) for t in fake.refused_at] if times else [],
            "provider_429s": fake.too_many, "lost": lost, "outbound_duplicates": doubles,
            "replies_failed": statuses.get("failed", 0), "reply_statuses": statuses}


if __name__ == "__main__":
    sys.exit(main())
