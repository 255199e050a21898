"""The store is the record: a lost broker queue or a killed worker delays work, never loses it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import func, select

import workers
from connectors.api import sign
from store.settings import Settings
from store.sql import conversations, messages
from tests import support
from tests.support import CallbackServer, Running, wait_for

ROOT = Path(__file__).resolve().parents[2]  # the repository (this file is tests/workers/...)


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


def _compose(service: str, port: int) -> list[str]:
    """The command docker-compose.yml runs for ``service`` (without ``omnidesk``), on loopback
    and ``port``: the deployment's own process lines are what this test starts."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    settings = set(Settings.model_fields)
    for key in compose["services"][service].get("environment", {}):
        assert key.removeprefix("OMNIDESK_").lower() in settings, f"{service}: unknown setting {key}"
    command = compose["services"][service]["command"]
    assert command[0] == "omnidesk"
    return [{"0.0.0.0": "127.0.0.1", "8000": str(port)}.get(arg, arg) for arg in command[1:]]


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=ROOT, env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def test_separate_processes_survive_a_killed_worker(pg_url: str, callback: CallbackServer, tmp_path: Path) -> None:
    """``omnidesk web``, ``worker`` and ``scheduler`` as separate processes on PostgreSQL + Redis;
    a worker killed with SIGKILL mid-run; its replacement finishes everything, nothing doubled."""
    support.check_redis()
    port = support.free_port()
    namespace = f"omnidesk-test-{os.getpid()}-kill"
    env = {**os.environ, "OMNIDESK_DATABASE_URL": pg_url, "OMNIDESK_REDIS_URL": support.REDIS_URL,
           "OMNIDESK_REDIS_NAMESPACE": namespace, "OMNIDESK_SECRET_KEY": "k" * 32,
           "OMNIDESK_PUBLIC_URL": f"http://127.0.0.1:{port}", "OMNIDESK_SWEEP_INTERVAL": "0.5",
           "OMNIDESK_SWEEP_GRACE": "1"}
    log = tmp_path / "processes.log"
    subprocess.run([sys.executable, "-m", "cli", *_compose("migrate", port)], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    token = subprocess.run([sys.executable, "-m", "cli", "token", "create", "--admin"], cwd=ROOT, env=env,
                           check=True, capture_output=True, text=True).stdout.strip()
    assert token.startswith("od_") and "\n" not in token
    procs = [_spawn(_compose("web", port), env, log), _spawn(_compose("scheduler", port), env, log)]
    worker = _spawn([*_compose("worker", port), "--threads", "2"], env, log)
    try:
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"})
        wait_for(lambda: _healthy(api), timeout=30, what="omnidesk web")
        agent = api.post("/api/v1/agents", json={"name": "Ana", "email": "ana@shop.test", "capacity": 400}).json()
        api.put(f"/api/v1/agents/{agent['id']}/presence", json={"status": "online"})
        secret = "s" * 24
        channel = api.post("/api/v1/channels", json={"kind": "api", "name": "shop",
                                                     "config": {"secret": secret, "callback_url": callback.url}}).json()
        for n in range(200):
            body = json.dumps({"message_id": f"k{n}", "from": {"id": f"c{n % 150}"}, "text": f"m{n}"}).encode()
            answer = api.post(f"/webhooks/{channel['id']}", content=body,
                              headers={"X-Omnidesk-Signature": sign(secret, body)})
            assert answer.status_code == 202
            if n == 60:
                worker.send_signal(signal.SIGKILL)
                worker.wait()
        worker = _spawn([*_compose("worker", port), "--threads", "2"], env, log)

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
        from sqlalchemy import create_engine

        from store.db import normalise_url

        engine = create_engine(normalise_url(pg_url))
        try:
            assert _totals(engine) == (200, 150, 150)
        finally:
            engine.dispose()
    finally:
        for proc in [*procs, worker]:
            proc.terminate()
        for proc in [*procs, worker]:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        support.flush_namespace(namespace)
        if os.environ.get("OMNIDESK_TEST_SHOW_LOGS"):
            print(log.read_text())


def _healthy(api: httpx.Client) -> bool:
    try:
        return api.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False
