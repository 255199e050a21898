"""Replies go out once when the database goes away between a send and its record, and a killed
worker's reply is taken over in seconds with the same delivery id (an issue saw 1 to 7 of 300
replies delivered twice, and two minutes before a killed worker's replies went out)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.exc import OperationalError

import workers
from store.db import normalise_url
from store.settings import secret_key
from store.sql import messages
from tests import support
from tests.fakes.shop import Answer, Shop
from tests.support import Running, wait_for

ROOT = Path(__file__).resolve().parent.parent.parent


def _terminate(database: str) -> None:
    with support.pg_admin() as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s AND pid <> pg_backend_pid()", [database])


def _statuses(database_url: str, ids: list[int]) -> Counter[str]:
    engine = create_engine(normalise_url(database_url))  # not the workers' pool, whose connections die here
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(messages.c.status).where(messages.c.id.in_(ids))).scalars().all()
        return Counter(rows)
    except OperationalError:  # terminated too, while reading: ask again
        return Counter()
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_terminated_connections_between_send_and_record_send_each_reply_once(omnidesk: Running) -> None:
    shop = Shop()
    try:
        agent = omnidesk.agent("Ana", capacity=5)
        channel_id, secret = omnidesk.api_channel(shop.url)
        assert omnidesk.post_inbound(channel_id, secret, {"message_id": "in-1", "from": {"id": "c1"},
                                                          "text": "hello"}).status_code == 202
        conv = wait_for(lambda: (i := omnidesk.ok("GET", "/conversations")["items"]) and i[0]["assignee_id"] and i[0],
                        what="routing")
        omnidesk.worker.stop()  # the replies wait, pending, for the worker below
        ids = [omnidesk.ok("POST", f"/conversations/{conv['id']}/messages", token=agent["token"],
                           json={"text": f"reply {n}"})["id"] for n in range(30)]
        database = omnidesk.database_url.rsplit("/", 1)[1]
        shop.answers = [Answer(before=(lambda: _terminate(database)) if n % 4 == 0 else None) for n in range(30)]
        omnidesk.worker = workers.start_worker(omnidesk.broker, threads=4)
        wait_for(lambda: _statuses(omnidesk.database_url, ids)["delivered"] == 30, timeout=60, interval=0.3,
                 what="every reply delivered")
        time.sleep(1.5)  # a sweep or two more: nothing is sent again
        assert sorted(Counter(shop.delivery_ids()).values()) == [1] * 30
    finally:
        shop.close()


def test_a_killed_workers_reply_is_taken_over_in_seconds_with_the_same_delivery_id(
        pg_url: str, tmp_path: Path) -> None:
    """A worker process killed with SIGKILL while the shop is still answering its send: the reply
    is sent again by the next worker once the short lease ran out, carrying the same delivery id."""
    support.check_redis()
    namespace = f"omnidesk-test-{os.getpid()}-lease"
    env = {**os.environ, "OMNIDESK_DATABASE_URL": pg_url, "OMNIDESK_REDIS_URL": support.REDIS_URL,
           "OMNIDESK_REDIS_NAMESPACE": namespace, "OMNIDESK_SECRET_KEY": secret_key(),
           "OMNIDESK_SWEEP_INTERVAL": "0.5", "OMNIDESK_SWEEP_GRACE": "1"}
    log = (tmp_path / "processes.log").open("ab")

    def spawn(*args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)

    shop = Shop()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run([sys.executable, "-m", "cli", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                       capture_output=True)
        engine = create_engine(normalise_url(pg_url))
        reply_id = _reply_waiting(engine, shop.url)
        shop.answers = [Answer(delay=30.0)]  # the first send hangs until its worker is killed
        procs.append(spawn("scheduler"))
        worker = spawn("worker", "--threads", "1")
        wait_for(lambda: len(shop.requests) == 1, timeout=30, what="the first send")
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        killed_at = time.monotonic()
        procs.append(spawn("worker", "--threads", "1"))
        wait_for(lambda: len(shop.requests) == 2, timeout=40, interval=0.2, what="the reply taken over")
        assert time.monotonic() - killed_at < 30  # the lease, not two minutes
        assert shop.delivery_ids() == [str(reply_id)] * 2  # the shop drops the repeat by it
        wait_for(lambda: _status(engine, reply_id) == "delivered", what="the outcome recorded")
        engine.dispose()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shop.close()
        support.flush_namespace(namespace)


def _reply_waiting(engine, callback_url: str) -> int:  # type: ignore[no-untyped-def]
    """A customer's message on an API channel and an agent's reply to it, pending."""
    from connectors.base import Identity, InboundMessage
    from store import outbound
    from store.channels import create_channel
    from store.inbound import record_inbound

    channel_id = create_channel(engine, "api", "shop", {"secret": "s" * 24, "callback_url": callback_url})
    [recorded] = record_inbound(engine, channel_id, [InboundMessage("in-1", Identity("c1"), text="hi",
                                                                    thread_key="t")])
    return outbound.create_reply(engine, recorded.conversation_id, agent_id=None, text="on its way")


def _status(engine, message_id: int) -> str:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(select(messages.c.status).where(messages.c.id == message_id)).scalar_one()
