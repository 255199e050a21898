"""Send pacing: slots per key, the same in-process and on Redis (one script, keys under the
broker's namespace that expire), and the deliver job keeping to a connector's limit across two
workers: 40 replies at 10/s within a token bucket of that rate at the receiver, and at least 9/s."""

from __future__ import annotations

import itertools
import secrets
import statistics
import threading
import time
from collections.abc import Callable, Iterator

import dramatiq
import pytest
from sqlalchemy import select

import delivery
import pacing
from connectors.base import SendLimit
from tests import support
from tests.channels.receiver import Receiver
from tests.channels.remote import remote_kind  # noqa: F401 - fixture
from tests.support import Running, wait_for


@pytest.fixture(params=["local", "redis"])
def pacer(request: pytest.FixtureRequest) -> Iterator[pacing.LocalPacer | pacing.RedisPacer]:
    """The in-process pacer and the Redis one (its Lua script): the same rule, the same answers."""
    if request.param == "local":
        yield pacing.LocalPacer()
        return
    import redis

    support.check_redis()
    namespace = f"omnidesk-test-{secrets.token_hex(4)}"
    try:
        yield pacing.RedisPacer(redis.Redis.from_url(support.REDIS_URL), namespace)
    finally:
        support.flush_namespace(namespace)


def test_slots_are_spaced_per_key(pacer: pacing.LocalPacer | pacing.RedisPacer) -> None:
    # Each wait counts from its own call: add the time from the first call to this one's start, so
    # the slots compare on one clock however slowly a loaded machine makes the calls.
    start = time.monotonic()

    def at(call: Callable[[], float]) -> float:
        called = time.monotonic() - start
        return call() + called

    five = SendLimit("a", 5.0)
    slots = [at(lambda: pacer.take(five)) for _ in range(4)]
    step = pacing.interval(five)
    assert step == pytest.approx(0.2 * pacing.MARGIN)
    assert slots == pytest.approx([0.0, step, 2 * step, 3 * step], abs=0.02)
    b = SendLimit("b", 5.0)
    first_b = at(lambda: 0.0)
    b_slots = [at(lambda: pacer.take(b)) - first_b for _ in range(3)]
    assert b_slots == pytest.approx([0.0, step, 2 * step], abs=0.02)  # keys are apart
    # Both limits of one reply: one slot, the later key's; each key's next slot is an interval after it.
    slot = pacing.ask([SendLimit("b", 5.0), five], pacer)
    assert slot.taken and at(lambda: slot.wait) == pytest.approx(4 * step, abs=0.03)
    assert at(lambda: pacer.next_free("b")) == pytest.approx(5 * step, abs=0.03)  # b's fourth slot left unused
    assert pacing.ask([], pacer) == pacing.Slot(0.0, True)


def test_only_near_slots_are_reserved_and_the_rest_queue_up(pacer: pacing.LocalPacer | pacing.RedisPacer) -> None:
    """Past the horizon nothing is reserved: the key's next free time stays where the taken slots
    left it, and each reply sent away gets a place QUEUE_STEP of an interval behind the one before."""
    five = SendLimit("q", 5.0)
    step = pacing.interval(five)
    slots = [pacing.ask([five], pacer, horizon=0.5) for _ in range(6)]
    assert [s.taken for s in slots] == [True, True, True, False, False, False]
    assert [s.wait for s in slots[:3]] == pytest.approx([0.0, step, 2 * step], abs=0.02)
    queued = [s.wait for s in slots[3:]]
    assert queued == pytest.approx([3 * step + n * pacing.QUEUE_STEP * step for n in range(3)], abs=0.02)
    assert pacer.next_free("q") == pytest.approx(3 * step, abs=0.02)  # nothing reserved past the horizon


def test_a_reply_bound_by_another_key_does_not_block_the_first(pacer: pacing.LocalPacer | pacing.RedisPacer) -> None:
    """A chat's slot a second away may not hold the bot's next 30 slots empty (SPARE): the reply
    reserves nothing and the bot's next slot goes to the next reply."""
    bot, chat = SendLimit("bot", 30.0), SendLimit("bot:chat1", 1.0)
    assert pacing.ask([bot, chat], pacer).taken  # the chat's first
    second = pacing.ask([bot, chat], pacer)
    assert not second.taken and second.wait == pytest.approx(pacing.interval(chat), abs=0.02)
    assert pacing.ask([bot, SendLimit("bot:chat2", 1.0)], pacer) == pacing.Slot(
        pytest.approx(pacing.interval(bot), abs=0.02), True)  # type: ignore[arg-type]


def _sent_at_once(pacer: pacing.LocalPacer | pacing.RedisPacer, limits: list[SendLimit]) -> float:
    """A send that the provider answers the moment it starts (the pacer told so): its wait."""
    start = pacer.sending(limits)
    pacer.sent(limits, start.token)
    return start.wait


def test_a_late_send_keeps_its_slot_within_the_providers_window(pacer: pacing.LocalPacer | pacing.RedisPacer) -> None:
    """A send that starts after its slot (a sleep that woke late) goes at once and the sends after
    it keep their slots, as long as no window of the limit (1.01 s at 10/s) holds more than its
    burst (10) of arrivals, and no two start closer than CATCH_UP of the limit's gap; else they
    wait. The next slot reserved is an interval after the late send, not after its slot."""
    ten = SendLimit("late", 10.0)
    step = pacing.interval(ten)
    assert (pacing.burst(ten), pacing.window(ten)) == (10, pytest.approx(1.0 * pacing.WINDOW_MARGIN))
    assert pacer.take(ten) == pytest.approx(0.0, abs=0.01)
    time.sleep(0.3)  # three slots late
    assert _sent_at_once(pacer, [ten]) == 0.0  # the late one sends at once
    assert pacer.next_free("late") == pytest.approx(step, abs=0.03)  # an interval after it
    first = time.monotonic()
    # Nine more at once (held up behind it): they catch up half a gap (0.05 s) apart, within the
    # window's burst; the eleventh would be one too many for the window the late send began.
    waits = [_sent_at_once(pacer, [ten]) for _ in range(10)]
    elapsed = time.monotonic() - first
    gap = pacing.CATCH_UP / ten.per_second
    assert waits[:9] == pytest.approx([n * gap for n in range(1, 10)], abs=0.03 + elapsed)
    assert waits[9] == pytest.approx(pacing.window(ten), abs=0.03 + elapsed)
    assert _sent_at_once(pacer, [SendLimit("other", 10.0)]) == 0.0  # keys are apart
    one = SendLimit("chat", 1.0)  # one a second: each start a window after the one before arrived
    assert _sent_at_once(pacer, [one]) == 0.0
    assert _sent_at_once(pacer, [one]) == pytest.approx(pacing.window(one), abs=0.03)


def test_a_send_counts_until_the_provider_answered_it(pacer: pacing.LocalPacer | pacing.RedisPacer) -> None:
    """The provider counts a send when it arrives, between its start and its answer: the next
    send of a one-a-second chat waits a window from the answer, not from the start, so however
    slow the first request was the two arrive a window apart. One never answered (its worker
    died) counts as arriving a window after its start."""
    one = SendLimit("slow-chat", 1.0)
    window = pacing.window(one)
    first = pacer.sending([one])
    assert first.wait == 0.0
    time.sleep(0.4)  # the request takes 0.4 s
    pacer.sent([one], first.token)
    answered = time.monotonic()
    start = pacer.sending([one])
    assert start.wait + (time.monotonic() - answered) == pytest.approx(window, abs=0.03)
    pacer.sent([one], start.token)
    lost = SendLimit("lost-chat", 1.0)
    began = time.monotonic()
    assert pacer.sending([lost]).wait == 0.0  # never answered
    assert pacer.sending([lost]).wait + (time.monotonic() - began) == pytest.approx(2 * window, abs=0.03)
    # Thirty a second: thirty sends in flight fill the window; one answered frees a place a window on.
    bot = SendLimit("busy-bot", 30.0)
    starts = [pacer.sending([bot]) for _ in range(30)]
    began = time.monotonic()
    pacer.sent([bot], starts[0].token)
    assert pacer.sending([bot]).wait + (time.monotonic() - began) == pytest.approx(window, abs=0.05)


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
    refused = over_bucket(times, rate=10.0, capacity=BUCKET)
    assert not refused, f"{refused} over the limit: {[round(t - times[0], 3) for t in times]}"
    shown = [round(t - times[0], 3) for t in times]
    # Over the run, at most the rate: 40 sends take 39 intervals. One send's worth of slack, because
    # the stamps at the ends move too: a CI run's first request arrived 0.1 s late (its connection
    # was opened), behind the second by 4 ms, and 39 / span came to 10.07/s though every 1 s window
    # held 10 at most. A pacer at 10.3/s still fails this.
    achieved = (len(times) - 2) / (times[-1] - times[0])
    assert achieved <= 10.0, f"{achieved:.2f}/s of 10/s: {shown}"
    # The allowance is used: sends follow each other at the rate. Judged on the typical gap, not on
    # the span, which one stall of this loaded machine stretches (a CI run: one 0.55 s gap in 40
    # sends, 8.9/s over the span, every other gap 0.1 s).
    gap = statistics.median(b - a for a, b in itertools.pairwise(times))
    assert gap <= 1 / 9.0, f"sends {gap * 1000:.0f} ms apart (median) at 10/s: {shown}"


# The receiver's limit, as a provider's is: a rate with a little tolerance, a token bucket refilled at
# the rate. Capacity 5: on this loaded 2-core machine the receiver's stamps clump when its process
# gets the CPU back (measured: three and four arrivals within 2 ms, for sends whose starts the pacer
# kept at least 50 ms apart, after a 0.4 s stall), which a 10-in-any-second window or a smaller
# bucket counts as sends too many. Six at once are still refused, and the rate over the run may
# not exceed the limit.
BUCKET = 5


def over_bucket(times: list[float], *, rate: float, capacity: int) -> int:
    """How many of the sorted arrival ``times`` a token bucket of ``capacity`` refilled at ``rate``
    a second (full at the start) would refuse."""
    tokens, last, refused = float(capacity), times[0] if times else 0.0, 0
    for t in times:
        tokens, last = min(capacity, tokens + (t - last) * rate), t
        if tokens < 1:
            refused += 1
        else:
            tokens -= 1
    return refused


def test_the_bucket_refuses_a_rate_too_high_or_a_burst() -> None:
    """The receiver's check can fail: 11/s for 7 s, or six at once, are refused; 10/s is not."""
    assert over_bucket([n / 11 for n in range(77)], rate=10.0, capacity=BUCKET) > 0
    assert over_bucket([0.0, 0.01, 0.02, 0.03, 0.04, 0.05], rate=10.0, capacity=BUCKET) == 1
    assert over_bucket([n / 10 for n in range(40)], rate=10.0, capacity=BUCKET) == 0


def _conversation(desk: Running, callback_url: str) -> int:
    channel = desk.ok("POST", "/channels", json={"kind": "remote_test", "name": "Paced", "config": {
        "secret": "a-shared-secret-of-the-shop", "callback_url": callback_url, "send_rate": 10}})
    assert desk.post_inbound(channel["id"], "a-shared-secret-of-the-shop",
                             {"message_id": "in-1", "from": {"id": "c1"}, "text": "hi"}).status_code == 202
    [conv] = wait_for(lambda: desk.ok("GET", "/conversations")["items"], what="the conversation")
    return conv["id"]


def test_a_long_wait_puts_the_reply_off_without_a_slot(store_engine, remote_kind: str,  # type: ignore[no-untyped-def]  # noqa: F811
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the horizon the reply goes back to pending, its claim not counted, and is rung again
    before its place in the queue; it reserves nothing, so coming back late loses no slot. Back
    with its slot near, it sleeps to it in the thread and sends."""
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
    assert delivery.paced(store_engine, reply, (limit,), workers._bells()) is None
    [(args, delay_ms)] = rung
    place = 3 * pacing.interval(limit)
    assert args == (reply,)
    assert delay_ms == pytest.approx((place - delivery.PACE_EARLY) * 1000, abs=300)
    assert pacer.next_free("test:slow") == pytest.approx(place, abs=0.4)  # nothing reserved
    with store_engine.connect() as conn:
        row = conn.execute(select(messages.c.status, messages.c.attempts, messages.c.next_attempt_at)
                           .where(messages.c.id == reply)).one()
    assert (row.status, row.attempts) == ("pending", 0)
    # Back when its slot is near: it takes it, sleeps to it, and the next slot is an interval on.
    pacer._state["test:slow"] = (time.monotonic() + 0.3, 0.0, 0.0)
    started = time.time()
    assert delivery.paced(store_engine, reply, (limit,), workers._bells()) is not None
    assert 0.29 <= time.time() - started < 1.5
    assert pacer.next_free("test:slow") == pytest.approx(pacing.interval(limit), abs=0.2)


def test_a_pacer_that_cannot_be_told_of_the_answer_only_counts_the_send_longer(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Redis gone between a send's start and its answer: telling the pacer fails, which is logged
    and never raised (the send went out: no reason to retry it), and the send counts as arriving
    a window after its start, as one whose worker died."""
    import redis

    support.check_redis()
    namespace = f"omnidesk-test-{secrets.token_hex(4)}"
    try:
        working = pacing.RedisPacer(redis.Redis.from_url(support.REDIS_URL), namespace)
        chat = SendLimit("unanswered-chat", 1.0)
        start = working.sending([chat])
        began = time.monotonic()
        monkeypatch.setattr(pacing, "_pacer", pacing.current())  # put back after the test
        pacing.configure(None, namespace=namespace, redis_url=f"redis://127.0.0.1:{support.free_port()}")
        delivery.answered((chat,), start)  # Redis unreachable: no exception
        assert "could not tell the pacer a send was answered" in caplog.text
        wait = working.sending([chat]).wait
        # counted as arriving a window after its start, the next may start a window after that
        assert wait + (time.monotonic() - began) == pytest.approx(2 * pacing.window(chat), abs=0.05)
    finally:
        support.flush_namespace(namespace)
