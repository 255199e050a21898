"""A web process reads the event table once for all its streams (``web.events.Hub``) and each
stream picks what its agent may see with ``web.events.sees``: on random teams, agents,
conversations and events, on both databases, that picks exactly what the agent's own reader
(``store.events.Reader``, the rule in SQL) reads."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import Engine

from router.access import Viewer
from store import agents as agent_store
from store import events
from store.models import utcnow
from store.sql import conversations
from tests.support import channel_and_contact
from web import events as web_events
from web.events import Hub, frame, sees, shown


@pytest.mark.parametrize("seed", [1, 2])
def test_the_shared_reader_filtered_gives_each_agent_what_their_own_reader_gives(store_engine: Engine,
                                                                                  seed: int) -> None:
    rnd = random.Random(seed)
    team_ids = [agent_store.create_team(store_engine, f"team {n}") for n in range(3)]
    viewers = []
    for n in range(8):
        role = "admin" if n == 7 else "agent"
        member = rnd.sample(team_ids, rnd.choice([0, 1, 1, 2]))
        agent_id, _ = agent_store.create_agent(store_engine, name=f"A{n}", email=f"a{n}@shop.test", role=role,
                                               team_ids=member)
        viewers.append(Viewer.of(agent_id, role, member))
    now = utcnow()
    with store_engine.begin() as conn:
        channel_id, contact_id = channel_and_contact(conn, now)
        conversation_ids = [conn.execute(conversations.insert().values(
            channel_id=channel_id, contact_id=contact_id, status="open",
            assignee_id=rnd.choice([None, None, *(v.id for v in viewers)]), team_id=rnd.choice([None, *team_ids]),
            priority=0, needs_routing=False, route_attempts=0, created_at=now, updated_at=now)
            .returning(conversations.c.id)).scalar_one() for _ in range(30)]
        agent_ids = [None, None, *(v.id for v in viewers)]
        events.append(conn, [
            events.event(rnd.choice(["message.created", "conversation.updated", "agent.presence"]),
                         rnd.choice([None, *conversation_ids]), agent_id=rnd.choice(agent_ids))
            for _ in range(200)])
    every = events.Reader(store_engine, 0, agent_id=0, admin=True).read(1000)
    assert len(every) == 200
    mixed = False
    for viewer in viewers:
        own = [row.id for row in events.Reader(store_engine, 0, agent_id=viewer.id, admin=viewer.admin).read(1000)]
        assert own == [row.id for row in every if sees(viewer, row)], viewer
        mixed |= 0 < len(own) < len(every)
    assert mixed


@pytest.mark.parametrize("sights", [100_000, 3])
def test_the_hub_gives_each_viewer_from_any_place_what_sees_picks(store_engine: Engine, sights: int,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub filters each view's events once, as they come, by their sights, and forgets what it
    no longer keeps; from any place, what it answers is what ``sees`` picks of the kept events after
    that place. (With room for 3 sights, the hub numbers them again at every read.)"""
    rnd = random.Random(3)
    team_ids = [agent_store.create_team(store_engine, f"team {n}") for n in range(2)]
    viewers = [Viewer(0, True)]
    for n in range(4):
        member = rnd.sample(team_ids, n % 3)
        agent_id, _ = agent_store.create_agent(store_engine, name=f"A{n}", email=f"a{n}@shop.test", team_ids=member)
        viewers.append(Viewer.of(agent_id, "agent", member))
    now = utcnow()
    with store_engine.begin() as conn:
        channel_id, contact_id = channel_and_contact(conn, now)
        conversation_ids = [conn.execute(conversations.insert().values(
            channel_id=channel_id, contact_id=contact_id, status="open",
            assignee_id=rnd.choice([None, *(v.id for v in viewers[1:])]), team_id=rnd.choice([None, *team_ids]),
            priority=0, needs_routing=False, route_attempts=0, created_at=now, updated_at=now)
            .returning(conversations.c.id)).scalar_one() for _ in range(10)]
        events.append(conn, [
            events.event(rnd.choice(["message.created", "conversation.updated", "agent.presence", *events.PERSONAL]),
                         rnd.choice([None, *conversation_ids]), agent_id=rnd.choice([None, *(v.id for v in viewers)]))
            for _ in range(120)])
    every = events.Reader(store_engine, 0, agent_id=0, admin=True).read(1000)
    monkeypatch.setattr(web_events, "KEPT", 50)
    monkeypatch.setattr(web_events, "SIGHTS", sights)
    hub = Hub()
    hub.base = every[0].id - 1
    mixed = False
    for start in range(0, len(every), 17):  # read in batches, asked between them
        hub.take(every[start:start + 17])
        hub.head = every[min(start + 17, len(every)) - 1].id
        kept = [row for row in every[:start + 17] if row.id > hub.base]
        assert len(kept) <= 50
        for viewer in viewers:
            for after in (hub.base, rnd.choice(kept).id, kept[-1].id):
                text, place = hub.since(after, viewer)
                expected = "".join(frame(row.id, shown(row)) for row in kept if row.id > after and sees(viewer, row))
                assert (text.decode(), place) == (expected, hub.head), (viewer, after)
                mixed |= 0 < len(text) < len("".join(frame(row.id, shown(row)) for row in kept if row.id > after))
    assert hub.base > every[0].id  # the oldest were forgotten, by the views too (their memory is bounded)
    assert all(len(view.sequences) == len(view.frames) <= 50 for view in hub._views.values())
    assert mixed


def test_eager_runs_a_coroutine_at_once_and_a_task_only_for_what_waits() -> None:
    """``web.events.eager`` (how the hub writes its streams): a send that does not wait is done
    before it returns, with no task made; one that waits (a client slow to read) is finished by a
    task, which sees what it waited for (a value or an error) and calls ``done``; cancelling that
    task closes the coroutine."""
    import asyncio

    from web.events import eager

    async def scenario() -> None:
        steps: list[str] = []
        finished: list[object] = []

        async def send(wait: asyncio.Future[str] | None) -> None:
            steps.append("start")
            if wait is not None:
                try:
                    steps.append(await wait)
                except ValueError as exc:
                    steps.append(f"error {exc}")
                finally:
                    steps.append("end")

        assert eager(send(None), finished.append) is None and steps == ["start"] and not finished
        loop = asyncio.get_running_loop()
        for outcome in ("drained", ValueError("gone")):
            steps.clear()
            wait = loop.create_future()
            task = eager(send(wait), finished.append)
            assert task is not None and steps == ["start"]
            await asyncio.sleep(0.01)
            assert steps == ["start"] and not task.done()  # waiting, as the send is
            if isinstance(outcome, str):
                wait.set_result(outcome)
            else:
                wait.set_exception(outcome)
            await asyncio.sleep(0.01)
            assert steps == ["start", outcome if isinstance(outcome, str) else "error gone", "end"]
            assert task.done() and finished[-1] is task
        steps.clear()
        task = eager(send(loop.create_future()), finished.append)
        assert task is not None
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.sleep(0.01)
        assert steps == ["start", "end"] and finished[-1] is task  # closed, not left waiting

    asyncio.run(scenario())


def test_a_backlog_read_in_full_batches_wakes_the_streams_once_per_run_of_batches(
        store_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full read is followed by another at once; the streams are woken after the run of reads
    (one write each for all they brought), or after every RING_AFTER full reads of a long run, not
    after every read."""
    import asyncio

    from tests import support

    monkeypatch.setenv("OMNIDESK_EVENTS_POLL", "30")
    support.reset_caches()
    monkeypatch.setattr(web_events, "BATCH", 5)
    monkeypatch.setattr(web_events, "RING_AFTER", 4)
    engine = store_engine

    async def scenario() -> tuple[list[int], list[int]]:
        hub = Hub()
        bell = hub.subscribe()
        heads: list[int] = []
        try:
            async with asyncio.timeout(5):
                while hub.base is None:
                    await asyncio.sleep(0.01)
                bell.clear()
                with engine.begin() as conn:  # 33 events at once: six full reads and three events
                    events.append(conn, [events.event("agent.presence", agent_id=1, presence="away")
                                         for _ in range(33)])
                written = [row.id for row in events.Reader(engine, hub.base, agent_id=0, admin=True).read(100)]
                while not heads or heads[-1] < written[-1]:
                    await bell.wait()
                    bell.clear()
                    heads.append(hub.head)
        finally:
            hub.unsubscribe(bell)
        return heads, written

    heads, written = asyncio.run(scenario())
    assert len(written) == 33
    assert heads == [written[19], written[32]]  # after four full reads, and after the last read


def test_the_gather_grows_with_the_streams_and_beyond_the_knee_with_the_event_rates_square() -> None:
    least = 0.05
    assert web_events.gather(least, 5) == pytest.approx(0.0505)  # a few streams: about least
    assert web_events.gather(least, 500) == pytest.approx(0.1)  # a millisecond for every ten streams
    assert web_events.gather(least, 5000) == pytest.approx(0.15)  # up to three times least
    knee = web_events.EVENTS_KNEE
    assert web_events.gather(least, 500, knee * 0.6) == pytest.approx(0.1)  # a busy shop's peak: no change
    assert web_events.gather(least, 500, knee * 2) == pytest.approx(0.4)  # beyond: with its square
    assert web_events.gather(least, 500, knee * 3) == pytest.approx(0.9)
    assert web_events.gather(least, 500, knee * 1000) == web_events.GATHER_MOST


def test_the_event_rate_is_the_median_of_the_last_reads_rates_a_burst_passing_over_it() -> None:
    rate = web_events._Rate()
    rate.add(40, 10.0)  # the first read: no interval yet
    assert rate.value == 0.0
    now = 10.0

    def reads(count: int, each: int) -> None:
        nonlocal now
        for _ in range(count):
            now += 0.1
            rate.add(each, now)

    reads(30, 46)  # a shop's busy rate: 46 events a read, every 0.1 s
    assert rate.value == pytest.approx(460)
    reads(1, 600)  # a sweep's batch in one read: 6,000 a second for that read alone
    assert rate.value == pytest.approx(460)  # not a sustained load: the gather stays as it was
    assert web_events.gather(0.05, 500, rate.value) == pytest.approx(0.1)
    reads(web_events.RATE_READS, 46)
    half = web_events.RATE_READS // 2
    reads(half, 300)  # 3,000 a second, for fewer than half the reads: still the busy rate
    assert rate.value == pytest.approx(460)
    reads(1, 300)  # more than half: a load that lasts
    assert rate.value == pytest.approx(3000)
    assert web_events.gather(0.05, 500, rate.value) == pytest.approx(0.9)
    reads(half + 1, 46)  # the load over: back as soon
    assert rate.value == pytest.approx(460)
