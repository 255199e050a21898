"""Capacity is checked and taken in one transaction: many routers at once, one conversation at a
time or in batches, never over-assign."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select, update

from connectors.base import Identity, InboundMessage
from router.route import fill_agent, route_conversation
from store import agents as agent_store
from store import assignment
from store.inbound import record_inbound
from store.models import utcnow
from store.sql import agents, channels, conversations


def _channel(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        return conn.execute(channels.insert().values(kind="api", name="t", config={}, enabled=True, status="ok",
                                                     error_count=0, created_at=utcnow(), updated_at=utcnow())
                            .returning(channels.c.id)).scalar_one()


@contextlib.contextmanager
def _peaks(engine) -> Iterator[dict[int, int]]:  # type: ignore[no-untyped-def]
    """Watch, while the block runs, the most conversations each agent was seen holding (by its
    open assigned conversations, key agent id, and by its counter, key minus agent id): what any
    observer could see at any moment."""
    peak: dict[int, int] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            with engine.connect() as conn:
                for agent_id, n in conn.execute(
                    select(conversations.c.assignee_id, func.count()).where(
                        conversations.c.status == "open", conversations.c.assignee_id.is_not(None))
                    .group_by(conversations.c.assignee_id)):
                    peak[agent_id] = max(peak.get(agent_id, 0), n)
                for agent_id, n in conn.execute(select(agents.c.id, agents.c.active_count)):
                    peak[-agent_id] = max(peak.get(-agent_id, 0), n)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield peak
    finally:
        done.set()
        watcher.join()


def test_300_conversations_3_agents_capacity_5(pg_engine) -> None:  # type: ignore[no-untyped-def]
    engine = pg_engine
    channel_id = _channel(engine)
    agent_ids = [agent_store.create_agent(engine, name=f"A{i}", email=f"a{i}@shop.test", capacity=5,
                                          presence="online")[0] for i in range(3)]
    conv_ids = []
    for n in range(300):
        [rec] = record_inbound(engine, channel_id, [InboundMessage(
            external_id=f"m{n}", sender=Identity(external_id=f"c{n}"), text="hi", thread_key=f"c{n}")])
        conv_ids.append(rec.conversation_id)

    with _peaks(engine) as peak, ThreadPoolExecutor(max_workers=24) as pool:
        outcomes = list(pool.map(lambda cid: route_conversation(engine, cid), conv_ids))

    assigned = [o for o in outcomes if o.agent_id is not None]
    assert len(assigned) == 15
    assert all(v <= 5 for v in peak.values()), peak
    with engine.connect() as conn:
        counts = dict(conn.execute(select(conversations.c.assignee_id, func.count())
                                   .where(conversations.c.assignee_id.is_not(None))
                                   .group_by(conversations.c.assignee_id)).all())
        assert counts == {a: 5 for a in agent_ids}
        assert conn.execute(select(agents.c.active_count)).scalars().all() == [5, 5, 5]
        waiting = conn.execute(select(conversations.c.id).where(conversations.c.assignee_id.is_(None))
                               .order_by(conversations.c.waiting_since, conversations.c.id)).scalars().all()
    assert len(waiting) == 285

    # Resolving one frees a place: the oldest waiting conversation is pulled into it.
    victim = next(o.conversation_id for o in assigned if o.agent_id == agent_ids[0])
    freed = assignment.resolve(engine, victim, by=None)
    assert freed == agent_ids[0]
    assert fill_agent(engine, freed) == [waiting[0]]

    # Priority goes before waiting time.
    urgent = waiting[-1]
    with engine.begin() as conn:
        conn.execute(update(conversations).where(conversations.c.id == urgent).values(priority=10))
    second = next(o.conversation_id for o in assigned if o.agent_id == agent_ids[1])
    assert fill_agent(engine, assignment.resolve(engine, second, by=None)) == [urgent]
    with engine.connect() as conn:
        assert max(conn.execute(select(agents.c.active_count)).scalars()) == 5


def test_concurrent_pulls_and_routes_never_exceed_capacity(pg_engine) -> None:  # type: ignore[no-untyped-def]
    engine = pg_engine
    channel_id = _channel(engine)
    agent_id = agent_store.create_agent(engine, name="Solo", email="solo@shop.test", capacity=3, presence="online")[0]
    ids = [record_inbound(engine, channel_id, [InboundMessage(
        external_id=f"p{n}", sender=Identity(external_id=f"p{n}"), text="x", thread_key=f"p{n}")])[0].conversation_id
        for n in range(60)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        jobs = [pool.submit(route_conversation, engine, cid) for cid in ids]
        jobs += [pool.submit(fill_agent, engine, agent_id) for _ in range(20)]
        for job in jobs:
            job.result()
    with engine.connect() as conn:
        assert conn.execute(select(agents.c.active_count).where(agents.c.id == agent_id)).scalar_one() == 3
        assert conn.execute(select(func.count()).select_from(conversations)
                            .where(conversations.c.assignee_id == agent_id)).scalar_one() == 3


def test_overlapping_batches_and_single_routes_never_over_assign(pg_engine) -> None:  # type: ignore[no-untyped-def]
    """Many workers route overlapping batches of the same 300 conversations, while others route
    them one by one, pull the queue and send conversations back to it: no agent ever holds more
    than its capacity, no conversation is taken twice, every count matches what it counts."""
    import random

    import workers
    from router.route import route_conversations
    from store.sql import assignments

    engine = pg_engine
    channel_id = _channel(engine)
    agent_ids = [agent_store.create_agent(engine, name=f"B{i}", email=f"b{i}@shop.test", capacity=5,
                                          presence="online")[0] for i in range(3)]
    conv_ids = [r.conversation_id for r in record_inbound(engine, channel_id, [InboundMessage(
        external_id=f"b{n}", sender=Identity(external_id=f"b{n}"), text="hi", thread_key=f"b{n}")
        for n in range(300)])]
    rng = random.Random(7)
    def consistent() -> dict[int, int]:
        with engine.connect() as conn:
            held = dict(conn.execute(select(conversations.c.assignee_id, func.count()).where(
                conversations.c.status == "open", conversations.c.assignee_id.is_not(None))
                .group_by(conversations.c.assignee_id)).all())
            counts = dict(conn.execute(select(agents.c.id, agents.c.active_count)).all())
            holder = dict(conn.execute(select(conversations.c.id, conversations.c.assignee_id)
                                       .where(conversations.c.status == "open")).all())
            history = conn.execute(select(assignments.c.conversation_id, assignments.c.reason)
                                   .order_by(assignments.c.id)).all()
        assert counts == {a: held.get(a, 0) for a in agent_ids}, (counts, held)
        # Taken, then released (resolved, sent back by hand), then taken again: never taken twice.
        taken: dict[int, int] = {}
        for conv_id, reason in history:
            taken[conv_id] = taken.get(conv_id, 0) + (1 if reason in ("routed", "pulled") else -1)
            assert taken[conv_id] in (0, 1), (conv_id, history)
        assert {k for k, v in taken.items() if v} == {k for k, v in holder.items() if v is not None}
        return held

    def batches(ids: list[int]) -> list[list[int]]:
        """Each id in about three batches of up to 60, in shuffled order."""
        out = []
        for _ in range(3):
            shuffled = ids[:]
            rng.shuffle(shuffled)
            out += [shuffled[k:k + 60] for k in range(0, len(shuffled), 60)]
        return out

    def run(tasks: list[Callable[[], object]]) -> None:
        rng.shuffle(tasks)
        with ThreadPoolExecutor(max_workers=24) as pool:
            for job in [pool.submit(task) for task in tasks]:
                job.result()

    def settle() -> None:  # what the sweep does for whatever a skipped lock left needing routing
        with engine.connect() as conn:
            left = conn.execute(select(conversations.c.id).where(conversations.c.needs_routing.is_(True))).scalars()
            route_conversations(engine, list(left))

    with _peaks(engine) as peak:
        tasks: list[Callable[[], object]] = [
            functools.partial(workers.route_batch, b) if i % 2 else functools.partial(route_conversations, engine, b)
            for i, b in enumerate(batches(conv_ids))]
        tasks += [functools.partial(route_conversation, engine, cid) for cid in conv_ids[::10]]
        tasks += [functools.partial(fill_agent, engine, a) for a in agent_ids * 3]
        run(tasks)
        settle()
        assert consistent() == {a: 5 for a in agent_ids}

        # Each agent resolves two; three conversations go back to the queue by hand; everything
        # waiting is routed again in overlapping batches while the agents pull.
        with engine.connect() as conn:
            mine = {a: conn.execute(select(conversations.c.id).where(conversations.c.assignee_id == a)
                                    .order_by(conversations.c.id)).scalars().all() for a in agent_ids}
        for a in agent_ids:
            for cid in mine[a][:2]:
                assignment.resolve(engine, cid, by=a)
        with engine.begin() as conn:
            waiting = conn.execute(
                update(conversations).where(conversations.c.status == "open", conversations.c.assignee_id.is_(None))
                .values(needs_routing=True).returning(conversations.c.id)).scalars().all()
        tasks = [functools.partial(route_conversations, engine, b) for b in batches(list(waiting))]
        tasks += [functools.partial(assignment.assign_manually, engine, mine[a][2], None, by=a) for a in agent_ids]
        tasks += [functools.partial(fill_agent, engine, a) for a in agent_ids * 3]
        tasks += [functools.partial(route_conversation, engine, cid) for cid in waiting[::15]]
        run(tasks)
        for a in agent_ids:  # the manual unassignments need routing again
            fill_agent(engine, a)
        settle()
        assert consistent() == {a: 5 for a in agent_ids}
    assert peak and all(v <= 5 for v in peak.values()), peak
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(conversations).where(
            conversations.c.status == "open", conversations.c.assignee_id.is_(None),
            conversations.c.needs_routing.is_(False))).scalar_one() == 300 - 6 - 15


def test_concurrent_routing_keeps_every_group_capacity(pg_engine) -> None:  # type: ignore[no-untyped-def]
    """Routers in many threads, in batches, one by one and pulling for agents, over conversations
    of three capacity groups, skills and two team policies: no agent is ever seen over any group's
    capacity (nor over its total), no conversation is taken twice, and every group fills."""
    import random

    from router.route import route_conversations
    from store.sql import assignments, teams

    engine = pg_engine
    now = utcnow()
    caps = {"email": 3, "chat": 2, "messaging": 2}
    with engine.begin() as conn:
        kinds = {conn.execute(channels.insert().values(kind=kind, name=kind, config={}, enabled=True, status="ok",
                                                       error_count=0, created_at=now, updated_at=now)
                              .returning(channels.c.id)).scalar_one(): kind for kind in ("email", "webchat", "sms")}
        team_ids = [conn.execute(teams.insert().values(name=f"T{p}", policy=p, capacities=caps)
                                 .returning(teams.c.id)).scalar_one() for p in ("round_robin", "sticky")]
    agent_ids = [agent_store.create_agent(engine, name=f"G{i}", email=f"g{i}@shop.test", capacity=6,
                                          presence="online", team_ids=team_ids)[0] for i in range(4)]
    with engine.begin() as conn:  # two of them know returns; one has more chat room of its own
        conn.execute(update(agents).where(agents.c.id.in_(agent_ids[:2])).values(skills=["returns"]))
        conn.execute(update(agents).where(agents.c.id == agent_ids[3]).values(capacities={"chat": 3}))
    limit = {(a, g): caps[g] for a in agent_ids for g in caps} | {(agent_ids[3], "chat"): 3}
    rng = random.Random(11)
    conv_ids = []
    for channel_id in kinds:
        conv_ids += [r.conversation_id for r in record_inbound(engine, channel_id, [InboundMessage(
            external_id=f"{channel_id}-{n}", sender=Identity(external_id=f"k{n % 25}"), text="hi",
            thread_key=f"k{channel_id}-{n}") for n in range(80)])]
    with engine.begin() as conn:
        for cid in conv_ids:
            conn.execute(update(conversations).where(conversations.c.id == cid).values(
                team_id=rng.choice(team_ids), skills=rng.choice([None, [], ["returns"]])))
    group_of = {"email": "email", "webchat": "chat", "sms": "messaging"}
    peak: dict[tuple[int, str], int] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            with engine.connect() as conn:
                for agent_id, kind, n in conn.execute(
                        select(conversations.c.assignee_id, channels.c.kind, func.count())
                        .select_from(conversations.join(channels, channels.c.id == conversations.c.channel_id))
                        .where(conversations.c.status == "open", conversations.c.assignee_id.is_not(None))
                        .group_by(conversations.c.assignee_id, channels.c.kind)):
                    key = (agent_id, group_of[kind])
                    peak[key] = max(peak.get(key, 0), n)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        shuffled = conv_ids[:]
        tasks: list[Callable[[], object]] = []
        for _ in range(3):
            rng.shuffle(shuffled)
            tasks += [functools.partial(route_conversations, engine, shuffled[k:k + 40])
                      for k in range(0, len(shuffled), 40)]
        tasks += [functools.partial(route_conversation, engine, cid) for cid in conv_ids[::7]]
        tasks += [functools.partial(fill_agent, engine, a) for a in agent_ids * 4]
        rng.shuffle(tasks)
        with ThreadPoolExecutor(max_workers=16) as pool:
            for job in [pool.submit(task) for task in tasks]:
                job.result()
        for a in agent_ids:  # what the sweep would do: each pulls what room is left
            fill_agent(engine, a)
    finally:
        done.set()
        watcher.join()
    assert peak and all(n <= limit[key] for key, n in peak.items()), (peak, limit)
    with engine.connect() as conn:
        twice = conn.execute(select(assignments.c.conversation_id).group_by(assignments.c.conversation_id)
                             .having(func.count() > 1)).scalars().all()
        counts = dict(conn.execute(select(agents.c.id, agents.c.active_count)).all())
    assert twice == []
    assert all(counts[a] <= 6 for a in agent_ids), counts
    # Everyone is full in total (6) with the room each group leaves.
    assert sum(counts.values()) == 24, (counts, peak)


def _route_in_process(url: str, ids: list[int], agent_ids: list[int], seed: int) -> None:
    """One worker process: its own engine, the ids in shuffled batches, pulls between them."""
    import random

    from sqlalchemy import create_engine

    from router.route import route_conversations

    engine = create_engine(url, pool_size=2)
    rng = random.Random(seed)
    ids = ids[:]
    rng.shuffle(ids)
    for k in range(0, len(ids), 8):
        route_conversations(engine, ids[k:k + 8])
        fill_agent(engine, rng.choice(agent_ids))
    engine.dispose()


def test_worker_processes_keep_group_capacity(pg_engine, pg_url) -> None:  # type: ignore[no-untyped-def]
    """Four processes route the same conversations of two groups at once: each agent ends with
    exactly its room in each group, no conversation is taken twice, the counts match."""
    import multiprocessing

    from store.sql import assignments

    engine = pg_engine
    now = utcnow()
    with engine.begin() as conn:
        chat, email = (conn.execute(channels.insert().values(kind=kind, name=kind, config={}, enabled=True,
                                                              status="ok", error_count=0, created_at=now,
                                                              updated_at=now).returning(channels.c.id)).scalar_one()
                       for kind in ("webchat", "email"))
    agent_ids = [agent_store.create_agent(engine, name=f"P{i}", email=f"p{i}@shop.test", capacity=5,
                                          presence="online", capacities={"chat": 2, "email": 1})[0]
                 for i in range(3)]
    ids = [r.conversation_id for channel_id in (chat, email) for r in record_inbound(engine, channel_id, [
        InboundMessage(external_id=f"{channel_id}-{n}", sender=Identity(external_id=f"{channel_id}-{n}"), text="x",
                       thread_key=f"{channel_id}-{n}") for n in range(30)])]
    spawn = multiprocessing.get_context("spawn")
    workers_ = [spawn.Process(target=_route_in_process, args=(pg_url, ids, agent_ids, seed)) for seed in range(4)]
    for proc in workers_:
        proc.start()
    for proc in workers_:
        proc.join(120)
        assert proc.exitcode == 0
    with engine.connect() as conn:
        held = conn.execute(select(conversations.c.assignee_id, conversations.c.channel_id, func.count())
                            .where(conversations.c.assignee_id.is_not(None))
                            .group_by(conversations.c.assignee_id, conversations.c.channel_id)).all()
        counts = dict(conn.execute(select(agents.c.id, agents.c.active_count)).all())
        twice = conn.execute(select(assignments.c.conversation_id).group_by(assignments.c.conversation_id)
                             .having(func.count() > 1)).scalars().all()
    assert sorted(held) == sorted([(a, chat, 2) for a in agent_ids] + [(a, email, 1) for a in agent_ids])
    assert counts == {a: 3 for a in agent_ids} and twice == []


def test_agents_that_changed_after_the_unlocked_read_are_read_again_under_their_locks(store_engine) -> None:  # type: ignore[no-untyped-def]
    """Routing reads the available agents without locks, then locks them and reads their counts
    again (store.assignment_batch.lock_agents): one who went offline, was deactivated or filled
    up meanwhile is left out, and the others come with their counts as they are now."""
    from store.assignment_batch import AVAILABLE, load_agents, load_skills, lock_agents

    engine = store_engine
    ids = [agent_store.create_agent(engine, name=f"A{n}", email=f"a{n}@shop.test", presence="online",
                                    capacity=3)[0] for n in range(4)]
    stays, away, gone, full = ids
    with engine.connect() as conn:
        pool = load_agents(conn, AVAILABLE, lock=False)
        load_skills(conn, pool, [], loads=False)
    assert [ag.id for ag in pool] == ids
    with engine.begin() as conn:  # meanwhile, from elsewhere
        conn.execute(update(agents).where(agents.c.id == away).values(presence="away"))
        conn.execute(update(agents).where(agents.c.id == gone).values(active=False))
        conn.execute(update(agents).where(agents.c.id == full).values(active_count=3))
        conn.execute(update(agents).where(agents.c.id == stays).values(active_count=2))
    with engine.begin() as conn:
        locked = lock_agents(conn, pool)
    assert [(ag.id, ag.active_count) for ag in locked] == [(stays, 2)]


def test_a_conversation_another_transaction_holds_is_routed_again_not_left_for_the_sweep(pg_engine) -> None:  # type: ignore[no-untyped-def]
    """A batch's conversation locked by another transaction (an acknowledgement's claim, another
    router, the next message being stored) is skipped, not waited on; it still needs routing and is
    HELD, which the worker routes again within a moment (bench.inbox once saw a batch of 31 so
    skipped wait 13 s for the sweep). The others of the batch are routed as usual."""
    from router.route import route_conversations
    from store.assignment_batch import HELD

    engine = pg_engine
    channel_id = _channel(engine)
    agent_store.create_agent(engine, name="Ana", email="ana@shop.test", presence="online", capacity=9)
    ids = []
    for who in ("held", "free"):
        [rec] = record_inbound(engine, channel_id, [InboundMessage(external_id=who, sender=Identity(who), text="hi",
                                                                     thread_key=who)])
        ids.append(rec.conversation_id)
    held, free = ids
    with engine.connect() as other:
        with other.begin():
            other.execute(select(conversations.c.id).where(conversations.c.id == held).with_for_update())
            outcomes = {o.conversation_id: o for o in route_conversations(engine, ids)}
        assert (outcomes[held].agent_id, outcomes[held].skipped) == (None, HELD)
        assert outcomes[free].agent_id is not None and outcomes[free].skipped is None
    with engine.connect() as conn:
        assert conn.execute(select(conversations.c.needs_routing).where(conversations.c.id == held)).scalar_one()
    [again] = route_conversations(engine, [held])  # the worker's next attempt, the lock gone
    assert again.agent_id is not None and again.skipped is None
