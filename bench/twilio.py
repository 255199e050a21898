"""Twilio channels under load: signed form webhooks in, paced replies out, in one run.

    python -m bench.twilio [--messages 4000] [--concurrency 32] [--replies 600] [--rate 10]

Intake: signed Twilio form webhooks (``X-Twilio-Signature``) through the real HTTP server into
PostgreSQL, routed through Redis by a worker process, against the API channel's signed JSON
webhooks on the same processes in the same run (rounds alternate which goes first, as in
bench/ingest.py, whose machinery this reuses). Each message comes from a different number, so
each opens a conversation. Headline: Twilio's messages/s (posts answered, i.e. committed) and its
ratio to the API channel's (target >= 0.8).

Outbound: ``--replies`` replies on the SMS channel, all from one sender whose ``send_rate`` is
``--rate`` messages/s, delivered by ``--workers`` (2) worker processes through the local Twilio
stand-in (tests/fakes/twilio.py), which answers 429 above that rate and posts signed status
callbacks back. Measured at the stand-in: the achieved rate (messages taken, first to last) over
the allowed rate (target >= 0.95), its 429s (target 0), replies it took twice (duplicates), and
replies that never reached it or were not recorded sent (lost).
"""

from __future__ import annotations

import argparse
import collections
import secrets
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

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
    http_requests,
    print_table,
    scratch_database,
    stop_on_sigterm,
    use_database,
    wait_http,
)

TARGET_RATIO = 0.8
TARGET_RATE_RATIO = 0.95
SENDER = "+15550001111"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.twilio", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=4000, help="measured posts to each channel (default 4000)")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured posts to each first (default 200)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating API/Twilio rounds (default 2)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    parser.add_argument("--replies", type=int, default=600, help="replies sent (default 600)")
    parser.add_argument("--rate", type=float, default=10.0, help="the sender's messages/s (default 10)")
    parser.add_argument("--web-workers", type=int, default=2, help="web server processes (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker process (default 8)")
    parser.add_argument("--database-url", default=DEFAULT_PG)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    args = parser.parse_args(argv)
    if min(args.messages, args.rounds, args.concurrency, args.replies, args.workers) < 1 or args.rate <= 0 \
            or args.replies > args.messages + args.warmup:
        parser.error("sizes must be positive, and --replies at most the conversations made")
    began = time.monotonic()
    namespace = f"omnidesk-bench-{secrets.token_hex(4)}"
    from tests.fakes.twilio import FakeTwilio

    fake = FakeTwilio(rate=args.rate, callbacks=["sent", "delivered"], callback_delay=0.0)
    try:
        with stop_on_sigterm(), scratch_database(args.database_url) as url:
            env = use_database(url, OMNIDESK_REDIS_URL=args.redis_url, OMNIDESK_REDIS_NAMESPACE=namespace,
                               OMNIDESK_LOG_LEVEL="WARNING", OMNIDESK_WORKER_THREADS=str(args.threads),
                               OMNIDESK_RETRY_BASE="1")
            result = _run(args, env, fake, namespace)
    except KeyboardInterrupt:
        return 130
    finally:
        fake.close()
    result["seconds"] = round(time.monotonic() - began, 1)
    emit(result)
    return 0 if result["ok"] else 1


def _api_bodies(prefix: str, count: int, secret: str) -> list[tuple[bytes, dict[str, str]]]:
    from bench.ingest import _bodies

    return _bodies(prefix, count, secret)


def _twilio_bodies(fake: Any, url: str, prefix: int, count: int) -> list[tuple[bytes, dict[str, str]]]:
    """Signed inbound SMS webhooks, each from a different number, as Twilio posts them."""
    from tests.fakes.twilio import sign

    out = []
    for n in range(count):
        sid = f"SM{prefix:04x}{n:028x}"
        params = {"ToCountry": "US", "SmsMessageSid": sid, "NumMedia": "0", "SmsSid": sid, "SmsStatus": "received",
                  "FromCountry": "ES", "To": SENDER, "NumSegments": "1", "MessageSid": sid,
                  "AccountSid": fake.account_sid, "From": f"+346{prefix:02d}{n:06d}", "ApiVersion": "2010-04-01",
                  "Body": f"Hola, on és la meva comanda {n}? Gràcies!"}
        body = urlencode(params).encode()
        out.append((body, {"Content-Type": "application/x-www-form-urlencoded",
                           "X-Twilio-Signature": sign(fake.auth_token, url, params)}))
    return out


def _run(args: argparse.Namespace, env: dict[str, str], fake: Any, namespace: str) -> dict[str, Any]:
    from store.agents import create_agent
    from store.channels import create_channel
    from store.db import get_engine, upgrade

    upgrade()
    engine = get_engine()
    total = args.warmup + args.messages
    for n in range(10):
        create_agent(engine, name=f"Agent {n}", email=f"agent{n}@bench.example", capacity=2 * total, presence="online")
    secret = secrets.token_urlsafe(24)
    api_id = create_channel(engine, "api", "Shop", {"secret": secret, "callback_url": "http://127.0.0.1:9/unused"})
    sms_id = create_channel(engine, "sms", "Phone", fake.config(send_rate=args.rate, from_number=SENDER))
    ports = free_ports(args.web_workers)
    public = f"http://127.0.0.1:{ports[0]}"
    procs = Processes({**env, "OMNIDESK_PUBLIC_URL": public})
    try:
        for n, port in enumerate(ports):
            procs.omnidesk(f"web-{n}", "web", "--host", "127.0.0.1", "--port", str(port))
        procs.omnidesk("scheduler", "scheduler")
        procs.omnidesk("worker-0", "worker", "--threads", str(args.threads))
        for port in ports:
            wait_http(f"http://127.0.0.1:{port}/healthz", 60, procs)
        intake = _intake(args, fake, ports, public, api_id, sms_id, secret)
        for n in range(1, args.workers):
            procs.omnidesk(f"worker-{n}", "worker", "--threads", str(args.threads))
        time.sleep(3)  # the new workers connect to Redis
        outbound = _outbound(args, engine, fake, sms_id, namespace)
    except Exception:
        procs.show_logs()
        raise
    finally:
        procs.stop()
        flush_redis(args.redis_url, namespace)
    ratio = intake["twilio"] / intake["api"] if intake["api"] else 0.0
    rate_ratio = outbound["achieved"] / args.rate
    checks = {
        "every Twilio webhook answered 200": intake["twilio_errors"] == 0,
        "every API webhook answered 202": intake["api_errors"] == 0,
        "every Twilio message stored once": intake["stored"] == total,
        "no 429 from the provider": fake.refused_429 == 0,
        "no reply sent twice": outbound["duplicates"] == 0,
        "no reply lost": outbound["lost"] == 0,
    }
    for check, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {check}")
    print_table("", [["", "API channel", "Twilio"],
                     ["msgs/s (webhooks answered)", intake["api"], intake["twilio"]],
                     ["outbound msgs/s at the stand-in", "", outbound["achieved"]]])
    met = ratio >= TARGET_RATIO and rate_ratio >= TARGET_RATE_RATIO
    print(f"Twilio intake {ratio:.2f} of the API channel's (target {TARGET_RATIO}); outbound {rate_ratio:.3f} of "
          f"the allowed {args.rate:g}/s (target {TARGET_RATE_RATIO}): {'met' if met else 'NOT met'}")
    return {"bench": "twilio", "messages": args.messages, "replies": args.replies, "rate": args.rate,
            "workers": args.workers, "concurrency": args.concurrency,
            "api_msgs_per_s": round(intake["api"], 1), "msgs_per_s": round(intake["twilio"], 1),
            "ratio_to_api_channel": round(ratio, 3), "outbound_msgs_per_s": round(outbound["achieved"], 2),
            "target_met": met, "ok": all(checks.values()),
            "outbound_rate_ratio": round(rate_ratio, 3), "provider_429s": fake.refused_429,
            "duplicates": outbound["duplicates"], "lost": outbound["lost"]}


def _intake(args: argparse.Namespace, fake: Any, ports: list[int], public: str, api_id: int, sms_id: int,
            secret: str) -> dict[str, Any]:
    import psycopg

    from store.settings import get_settings

    api_path, sms_path = f"/webhooks/{api_id}", f"/webhooks/{sms_id}"
    sms_url = public + sms_path
    http_load(ports, http_requests(api_path, _api_bodies("warmup", args.warmup, secret)), args.concurrency)
    http_load(ports, http_requests(sms_path, _twilio_bodies(fake, sms_url, 99, args.warmup)), args.concurrency,
              ok=200)
    seconds: dict[str, float] = collections.defaultdict(float)
    errors: dict[str, int] = collections.defaultdict(int)
    per_round = args.messages // args.rounds
    for k in range(args.rounds):
        size = per_round + (args.messages % args.rounds if k == args.rounds - 1 else 0)
        order = ("api", "twilio") if k % 2 == 0 else ("twilio", "api")
        for who in order:
            if who == "api":
                answered = http_load(ports, http_requests(api_path, _api_bodies(f"r{k}", size, secret)),
                                     args.concurrency)
            else:
                answered = http_load(ports, http_requests(sms_path, _twilio_bodies(fake, sms_url, k, size)),
                                     args.concurrency, ok=200)
            seconds[who] += answered["seconds"]
            errors[who] += answered["errors"]
    url = get_settings().database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        stored = conn.execute("SELECT count(*) FROM messages WHERE channel_id = %s AND direction = 'in'",
                              (sms_id,)).fetchone()[0]
    return {"api": args.messages / seconds["api"], "twilio": args.messages / seconds["twilio"],
            "api_errors": errors["api"], "twilio_errors": errors["twilio"], "stored": stored}


def _outbound(args: argparse.Namespace, engine: Any, fake: Any, sms_id: int, namespace: str) -> dict[str, Any]:
    """Replies on as many of the SMS channel's conversations, rung at once; waits until each is
    recorded sent (or the time a correct run needs, three times over, has passed)."""
    from sqlalchemy import select

    import workers
    from store import outbound
    from store.sql import conversations, messages

    with engine.connect() as conn:
        convs = conn.execute(select(conversations.c.id).where(conversations.c.channel_id == sms_id)
                             .order_by(conversations.c.id).limit(args.replies)).scalars().all()
    workers.setup_broker(args.redis_url, namespace=namespace)
    ids = [outbound.create_reply(engine, conv, agent_id=None, text=f"bench reply {n}") for n, conv in enumerate(convs)]
    for message_id in ids:
        workers.ring_delivery(message_id)
    deadline = time.monotonic() + 3 * len(ids) / args.rate + 30
    done = 0
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            done = conn.execute(select(messages.c.id).where(messages.c.id.in_(ids),
                                messages.c.status.in_(("sent", "delivered", "read")))).all()
        if len(done) == len(ids):
            break
        time.sleep(1)
    with fake.lock:
        taken = list(fake.messages)
    counts = collections.Counter(m.form.get("Body") for m in taken)
    times = sorted(m.at for m in taken)
    achieved = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    slot = 1 / args.rate
    print(f"outbound: {len(taken)} taken in {times[-1] - times[0] if times else 0:.1f} s; gaps between sends: "
          f"median {sorted(gaps)[len(gaps) // 2] if gaps else 0:.3f} s, longest {max(gaps, default=0):.3f} s, "
          f"{sum(1 for g in gaps if g > 1.5 * slot)} over 1.5 slots, {sum(1 for g in gaps if g < 0.5 * slot)} under half")
    recorded = {row.id for row in done} if done else set()
    text = {message_id: f"bench reply {n}" for n, message_id in enumerate(ids)}
    lost = sum(1 for message_id in ids if message_id not in recorded or text[message_id] not in counts)
    return {"achieved": achieved, "duplicates": sum(n - 1 for n in counts.values() if n > 1), "lost": lost}

if __name__ == "__main__":
    raise SystemExit(main())
