"""Send pacing: slots per key, the same in-process and on Redis (one script, keys under the
broker's namespace that expire), and the deliver job keeping to a connector's limit across two
workers: 40 replies at 10/s never more than 10 in any second at the receiver, and at least 9/s."""

from __future__ import annotations

import itertools
import secrets
import threading
import time

import dramatiq
import pytest
from sqlalchemy import select

import pacing
from connectors.base import SendLimit
from tests import support
from tests.channels.receiver import Receiver
from tests.channels.remote import remote_kind  # noqa: F401 - fixture
from tests.support import Running, wait_for


def test_local_slots_are_spaced_per_key() -> None:
    pacer = pacing.LocalPacer()
    five = SendLimit("a", 5.0)
    waits = [pacer.take(five) for _ in range(4)]
    step = pacing.interval(five)
    assert step == pytest.approx(0.2 * pacing.MARGIN)
    assert waits[0] == pytest.approx(0.0, abs=0.01)
    assert waits[1:] == pytest.approx([step, 2 * step, 3 * step], abs=0.01)
    assert pacer.take(SendLimit("b", 5.0)) == pytest.approx(0.0, abs=0.01)  # keys are apart
    # Both limits of one reply: the longer wait counts.
    assert pacing.take_all([SendLimit("b", 5.0), five], pacer) == pytest.approx(4 * step, abs=0.02)
    assert pacing.take_all([], pacer) == 0.0


def test_redis_slots_are_shared_atomic_and_expire() -> None:
    import redis

    support.check_redis()
    client = redis.Redis.from_url(support.REDIS_URL)
    namespace = f"omnidesk-test-{secrets.token_hex(4)}"
    try:
        pacers = [pacing.RedisPacer(client, namespace) for _ in range(2)]  # two processes' worth
        limit = SendLimit("telegram:bot1:chat42", 10.0)
        waits: list[float] = []
        lock = threading.Lock()

        def take(p: pacing.RedisPacer) -> None:
            for _ in range(10):
                wait = p.take(limit)
                with lock:
                    waits.append(wait)

        threads = [threading.Thread(target=take, args=(pacers[n % 2],)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        step = pacing.interval(limit)
        # 40 slots, no two alike: each wait is one more step than another's (within the time taken).
        ordered = sorted(waits)
        assert ordered[0] < 0.05
        gaps = [b - a for a, b in itertools.pairwise(ordered)]
        assert all(g > step * 0.5 for g in gaps), gaps
        assert ordered[-1] == pytest.approx(39 * step, abs=0.5)
        [key] = client.keys(f"{namespace}:pace:*")
        assert key == f"{namespace}:pace:telegram:bot1:chat42".encode()
        ttl = client.pttl(key)
        assert 0 < ttl <= 39 * step * 1000 + pacing.KEEP_MS + 1000
    finally:
        support.flush_namespace(namespace)


def test_two_workers_keep_to_ten_a_second(backend: str, database_url: str, tmp_path, remote_kind: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """40 replies stored first and rung at once, sent by two workers (4 threads each) against
    10/s; arrivals timed by a receiver in a process of its own."""
    import workers
    from store import outbound

    receiver = Receiver()
    try:
        with support.running_omnidesk(backend, database_url, tmp_path, scheduler=False) as desk:
            second = dramatiq.Worker(desk.broker, worker_threads=4, worker_timeout=100)
            second.start()
            try:
                conversation_id = _conversation(desk, receiver.url)
                replies = [outbound.create_reply(desk.engine, conversation_id, agent_id=None, text=f"reply {n}")
                           for n in range(40)]
                for message_id in replies:
                    workers.ring_delivery(message_id)
                wait_for(lambda: len(receiver.times()) >= 40, timeout=30, what="40 replies at the receiver")
                time.sleep(0.5)
                times = receiver.times()
            finally:
                second.stop()
    finally:
        receiver.close()
    assert len(times) == 40  # each once
    times.sort()
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= 10, f"{busiest} sends within one second: {[round(t - times[0], 3) for t in times]}"
    achieved = (len(times) - 1) / (times[-1] - times[0])
    assert achieved >= 9.0, f"{achieved:.2f}/s of 10/s: {[round(t - times[0], 3) for t in times]}"


def _conversation(desk: Running, callback_url: str) -> int:
    channel = desk.ok("POST", "/channels", json={"kind": "remote_test", "name": "Paced", "config": {
        "secret": "a-shared-secret-of-the-shop", "callback_url": callback_url, "send_rate": 10}})
    assert desk.post_inbound(channel["id"], "a-shared-secret-of-the-shop",
                             {"message_id": "in-1", "from": {"id": "c1"}, "text": "hi"}).status_code == 202
    [conv] = wait_for(lambda: desk.ok("GET", "/conversations")["items"], what="the conversation")
    return conv["id"]


def test_a_long_wait_puts_the_reply_off_and_its_slot_is_kept(store_engine, remote_kind: str,  # type: ignore[no-untyped-def]  # noqa: F811
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Past PACE_SLEEP the reply goes back to pending, its claim not counted, due at its slot; the
    job rung for it carries the slot and, back in time, sends in it without taking another."""
    import workers
    from connectors.base import Identity, InboundMessage
    from store import outbound
    from store.channels import create_channel
    from store.inbound import record_inbound
    from store.sql import messages

    rung: list[tuple] = []  # type: ignore[type-arg]
    monkeypatch.setattr(workers, "enqueue", lambda actor, *args, delay_ms=None: rung.append((args, delay_ms)))
    pacer = pacing.LocalPacer()
    monkeypatch.setattr(pacing, "_pacer", pacer)
    channel_id = create_channel(store_engine, remote_kind, "paced", {
        "secret": "a-shared-secret-of-the-shop", "callback_url": "http://127.0.0.1:9/replies"})
    [hello] = record_inbound(store_engine, channel_id, [InboundMessage("in-1", Identity("c1"), "hi", thread_key="t")])
    reply = outbound.create_reply(store_engine, hello.conversation_id, agent_id=None, text="later")
    limit = SendLimit("test:slow", 1.0)
    for _ in range(3):  # three sends before this one: its slot is about 3 s away
        pacer.take(limit)
    claim = outbound.claim(store_engine, reply)
    assert claim is not None and claim.attempts == 1
    before = time.time()
    assert workers.paced(store_engine, reply, (limit,), None) is False
    [(args, delay_ms)] = rung
    slot = 3 * pacing.interval(limit)
    assert args[0] == reply and args[1] == pytest.approx(before + slot, abs=0.5)
    assert delay_ms == pytest.approx((slot - workers.PACE_EARLY) * 1000, abs=500)
    with store_engine.connect() as conn:
        row = conn.execute(select(messages.c.status, messages.c.attempts, messages.c.next_attempt_at)
                           .where(messages.c.id == reply)).one()
    assert (row.status, row.attempts) == ("pending", 0)
    # Back just before its slot: it sleeps to the slot and takes none of the pacer's.
    next_free = pacer._next_free["test:slow"]
    started = time.time()
    assert workers.paced(store_engine, reply, (limit,), started + 0.3) is True
    assert 0.29 <= time.time() - started < 1.5
    assert pacer._next_free["test:slow"] == next_free
