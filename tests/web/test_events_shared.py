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


def test_the_hub_gives_each_viewer_from_any_place_what_sees_picks(store_engine: Engine,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub filters each view's events once, as they come, and forgets what it no longer keeps;
    from any place, what it answers is what ``sees`` picks of the kept events after that place."""
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
            events.event(rnd.choice(["message.created", "conversation.updated", "agent.presence"]),
                         rnd.choice([None, *conversation_ids]), agent_id=rnd.choice([None, *(v.id for v in viewers)]))
            for _ in range(120)])
    every = events.Reader(store_engine, 0, agent_id=0, admin=True).read(1000)
    monkeypatch.setattr(web_events, "KEPT", 50)
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


def test_the_gather_grows_with_the_streams_and_beyond_the_knee_with_the_event_rate() -> None:
    least = 0.05
    assert web_events.gather(least, 5) == pytest.approx(0.0505)  # a few streams: about least
    assert web_events.gather(least, 500) == pytest.approx(0.1)  # a millisecond for every ten streams
    assert web_events.gather(least, 5000) == pytest.approx(0.15)  # up to three times least
    knee = web_events.EVENTS_KNEE
    assert web_events.gather(least, 500, knee * 0.6) == pytest.approx(0.1)  # a busy shop's peak: no change
    assert web_events.gather(least, 500, knee * 3) == pytest.approx(0.3)  # beyond: in proportion
    assert web_events.gather(least, 500, knee * 1000) == web_events.GATHER_MOST


def test_the_event_rate_is_a_moving_average_of_each_reads_count_over_the_time_since_the_last() -> None:
    rate = web_events._Rate()
    rate.add(40, 10.0)  # the first read: no interval yet
    assert rate.value == 0.0
    rate.add(30, 10.1)  # 300 a second
    assert rate.value == pytest.approx(300 / 8)  # each read weighs an eighth
    for n in range(2, 120):
        rate.add(300, 10.0 + n * 0.1)  # 300 events every 0.1 s: 3,000 a second, sustained
    assert rate.value == pytest.approx(3000, rel=1e-3)
    rate.add(0, 30.0)  # a read finding nothing after a quiet spell pulls it down by an eighth
    assert rate.value == pytest.approx(2625, rel=1e-3)
