"""The store is the record: a lost broker queue or a killed worker delays work, never loses it."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

import workers
from connectors.api import sign
from store.db import normalise_url
from store.sql import conversations, messages
from tests import support
from tests.deployment import Deployment
from tests.support import CallbackServer, Running, wait_for


def _totals(engine) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        inbound = select(func.count()).select_from(messages).where(messages.c.direction == "in")
        stored = conn.execute(inbound).scalar_one()
        convs = conn.execute(select(func.count()).select_from(conversations)).scalar_one()
        assigned = conn.execute(select(func.count()).select_from(conversations)
                                .where(conversations.c.assignee_id.is_not(None))).scalar_one()
    return stored, convs, assigned


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
@pytest.mark.no_scheduler
def test_flushed_redis_loses_no_message(omnidesk: Running, callback: CallbackServer) -> None:
    omnidesk.agent("Big capacity", capacity=500)
    channel_id, secret = omnidesk.api_channel(callback.url)
    omnidesk.worker.stop()  # jobs pile up in Redis, as under load
    for n in range(150):
        payload = {"message_id": f"m{n}", "from": {"id": f"c{n}"}, "text": f"message {n}"}
        assert omnidesk.post_inbound(channel_id, secret, payload).status_code == 202
        if n == 99:
            assert support.flush_namespace(omnidesk.namespace) > 0  # the queue is gone
    # Re-deliveries from the provider on top: still stored once.
    for n in range(0, 150, 10):
        omnidesk.post_inbound(channel_id, secret, {"message_id": f"m{n}", "from": {"id": f"c{n}"}, "text": "again"})

    omnidesk.broker = workers.setup_broker(support.REDIS_URL)  # a fresh worker process, as it were
    omnidesk.worker = workers.start_worker(omnidesk.broker, threads=4)
    wait_for(lambda: _totals(omnidesk.engine)[2] >= 50, what="the surviving queue to drain")
    assert _totals(omnidesk.engine)[2] < 150  # the first 100 jobs were really lost ...
    stop = threading.Event()
    scheduler = threading.Thread(target=workers.Scheduler(interval=0.3).run, args=(stop,), daemon=True)
    scheduler.start()
    try:  # ... and the sweep finds them in the store
        wait_for(lambda: _totals(omnidesk.engine) == (150, 150, 150), timeout=30, what="every conversation routed")
    finally:
        stop.set()


def test_separate_processes_survive_a_killed_worker(pg_url: str, callback: CallbackServer, tmp_path: Path) -> None:
    """``omnidesk web``, ``worker`` and ``scheduler`` as separate processes on PostgreSQL + Redis;
    a worker killed with SIGKILL mid-run; its replacement finishes everything, nothing doubled."""
    with Deployment(pg_url, tmp_path) as desk:
        api = desk.api
        agent = desk.ok("POST", "/agents", json={"name": "Ana", "email": "ana@shop.test", "capacity": 400})
        desk.ok("PUT", f"/agents/{agent['id']}/presence", json={"status": "online"})
        secret = "s" * 24
        channel = desk.ok("POST", "/channels", json={"kind": "api", "name": "shop",
                                                     "config": {"secret": secret, "callback_url": callback.url}})
        for n in range(200):
            body = json.dumps({"message_id": f"k{n}", "from": {"id": f"c{n % 150}"}, "text": f"m{n}"}).encode()
            answer = api.post(f"/webhooks/{channel['id']}", content=body,
                              headers={"X-Omnidesk-Signature": sign(secret, body)})
            assert answer.status_code == 202
            if n == 60:
                desk.kill_worker()
        desk.start_worker()

        def settled() -> bool:
            items, cursor = [], None
            while True:
                params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
                page = api.get("/api/v1/conversations", params=params).json()
                items += page["items"]
                if not (cursor := page["next"]):
                    break
            return len(items) == 150 and all(i["assignee_id"] == agent["id"] for i in items)

        wait_for(settled, timeout=60, interval=0.5, what="all 150 conversations assigned")
        first = api.get("/api/v1/conversations", params={"limit": 1}).json()["items"][0]
        detail = api.get(f"/api/v1/conversations/{first['id']}").json()
        assert len({m["id"] for m in detail["messages"]}) == len(detail["messages"])
        reply = api.post(f"/api/v1/conversations/{first['id']}/messages", json={"text": "on its way"}).json()
        wait_for(lambda: any(json.loads(b)["message_id"] == str(reply["id"]) for _, b in callback.requests),
                 timeout=30, what="the reply delivered by the new worker")
        # 200 posts from 150 customers: every message stored exactly once.
        engine = create_engine(normalise_url(pg_url))
        try:
            assert _totals(engine) == (200, 150, 150)
        finally:
            engine.dispose()


def test_a_stopped_worker_gives_a_hanging_job_its_grace_then_exits(pg_url: str, tmp_path: Path) -> None:
    """SIGTERM while a send hangs: the worker waits OMNIDESK_SHUTDOWN_GRACE for it, not the ten
    minutes dramatiq would, and exits cleanly (a supervisor's SIGKILL never has to come)."""
    import signal
    import time

    from tests.fakes.shop import Answer, Shop

    shop = Shop()
    shop.answers = [Answer(delay=60.0)]
    try:
        with Deployment(pg_url, tmp_path, OMNIDESK_SHUTDOWN_GRACE="2") as desk:
            agent = desk.ok("POST", "/agents", json={"name": "Ana", "email": "ana@shop.test", "capacity": 5})
            desk.ok("PUT", f"/agents/{agent['id']}/presence", json={"status": "online"})
            channel = desk.ok("POST", "/channels", json={"kind": "api", "name": "shop",
                                                         "config": {"secret": "s" * 24, "callback_url": shop.url}})
            body = json.dumps({"message_id": "m1", "from": {"id": "c1"}, "text": "hello"}).encode()
            assert desk.api.post(f"/webhooks/{channel['id']}", content=body,
                                 headers={"X-Omnidesk-Signature": sign("s" * 24, body)}).status_code == 202
            conv = wait_for(lambda: desk.ok("GET", "/conversations")["items"], what="the conversation")[0]
            desk.ok("POST", f"/conversations/{conv['id']}/messages", json={"text": "on its way"})
            wait_for(lambda: shop.requests, timeout=30, what="the send that hangs")
            assert desk.worker is not None
            started = time.monotonic()
            desk.worker.send_signal(signal.SIGTERM)
            assert desk.worker.wait(timeout=30) == 0
            assert time.monotonic() - started < 10
    finally:
        shop.close()
