"""Faults in the middle of a busy run, as deployed (``web``, ``scheduler`` and ``worker``
processes on PostgreSQL, with Redis or RabbitMQ as the broker): the worker is killed with SIGKILL,
then every database connection is terminated, while customers write and agents reply.

What must hold: every message a webhook acknowledged is stored once and intact; every reply the
API acknowledged reaches the shop, which (as omnidesk documents) drops repeats by ``delivery_id``,
exactly once after that drop, and is recorded ``delivered``; a repeat on the wire happens only for
sends that were in flight when their worker died; all of it settled within 30 s of the last fault.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.exc import OperationalError

from connectors.api import sign
from store.db import normalise_url
from store.sql import messages
from tests import support
from tests.deployment import Deployment
from tests.fakes.shop import Shop
from tests.workers.test_broker_rabbitmq import RABBITMQ_URL, queue_prefix

CUSTOMERS, PER_CUSTOMER, REPLIES_PER_CONVERSATION = 100, 3, 3
MESSAGES = CUSTOMERS * PER_CUSTOMER
SECRET = "s" * 24
WORKER_THREADS = 2


def _terminate_connections(database: str) -> int:
    with support.pg_admin() as admin:
        return len(admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = %s AND pid <> pg_backend_pid()", [database]).fetchall())


def _stored(database_url: str) -> tuple[list[tuple[str, str]], Counter[str]]:
    """(external id, text) of every inbound message, and the statuses of the replies."""
    engine = create_engine(normalise_url(database_url))
    try:
        with engine.connect() as conn:
            inbound = conn.execute(select(messages.c.external_id, messages.c.text)
                                   .where(messages.c.direction == "in")).all()
            replies = conn.execute(select(messages.c.status).where(messages.c.direction == "out")).scalars().all()
        return [tuple(row) for row in inbound], Counter(replies)
    except OperationalError:
        return [], Counter()
    finally:
        engine.dispose()


def _post_until_acknowledged(client: httpx.Client, url: str, body: bytes, headers: dict[str, str]) -> None:
    """As providers do: the same request again until it is answered 2xx."""
    for _ in range(200):
        try:
            if client.post(url, content=body, headers=headers).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never acknowledged")


def _reply(client: httpx.Client, conversation_id: int, text: str) -> int:
    for _ in range(200):
        try:
            answer = client.post(f"/api/v1/conversations/{conversation_id}/messages", json={"text": text})
            if answer.status_code == 202:
                return answer.json()["id"]
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"a reply to conversation {conversation_id} was never acknowledged")


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_a_killed_worker_and_terminated_connections_lose_nothing_and_double_nothing(
    pg_url: str, tmp_path: Path, broker: str
) -> None:
    database = pg_url.rsplit("/", 1)[1]
    with ExitStack() as stack:
        shop = Shop()
        stack.callback(shop.close)
        env = None
        if broker == "rabbitmq":
            prefix = stack.enter_context(queue_prefix())
            env = {"OMNIDESK_BROKER_URL": RABBITMQ_URL, "OMNIDESK_BROKER_QUEUE_PREFIX": prefix}
        desk = stack.enter_context(Deployment(pg_url, tmp_path, broker=env, worker_threads=WORKER_THREADS))
        agent = desk.ok("POST", "/agents", json={"name": "Ana", "email": "ana@shop.test", "capacity": 1000})
        desk.ok("PUT", f"/agents/{agent['id']}/presence", json={"status": "online"})
        channel = desk.ok("POST", "/channels", json={"kind": "api", "name": "shop",
                                                     "config": {"secret": SECRET, "callback_url": shop.url}})
        sent = {f"k{n}": f"message {n} from c{n % CUSTOMERS}: ¿dónde está mi pedido? ł ã" for n in range(MESSAGES)}
        acknowledged_replies: list[int] = []
        progress = {"acknowledged": 0}  # messages the webhooks acknowledged so far
        failures: list[BaseException] = []

        def reply_while_customers_write() -> None:
            """An agent answering every conversation once per round of customer messages, each
            reply retried until the API answers 202, so replies are in flight during both faults."""
            client = httpx.Client(base_url=desk.api.base_url, headers=dict(desk.api.headers), timeout=30)
            answered: Counter[int] = Counter()
            try:
                for round_ in range(REPLIES_PER_CONVERSATION):
                    while progress["acknowledged"] < (round_ + 1) * CUSTOMERS:
                        time.sleep(0.05)
                    while sum(answered.values()) < (round_ + 1) * CUSTOMERS:
                        try:
                            page = client.get("/api/v1/conversations", params={"limit": 200}).json()["items"]
                        except (httpx.HTTPError, ValueError, KeyError):
                            page = []
                        for conv in page:
                            if answered[conv["id"]] <= round_:
                                acknowledged_replies.append(_reply(client, conv["id"], f"reply {round_}"))
                                answered[conv["id"]] += 1
                        time.sleep(0.05)
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                failures.append(exc)

        replier = threading.Thread(target=reply_while_customers_write, daemon=True)
        replier.start()
        customers = httpx.Client(base_url=desk.api.base_url, timeout=30)
        url = f"/webhooks/{channel['id']}"
        for n, (message_id, text) in enumerate(sent.items()):
            body = json.dumps({"message_id": message_id, "from": {"id": f"c{n % CUSTOMERS}"}, "text": text}).encode()
            _post_until_acknowledged(customers, url, body, {"X-Omnidesk-Signature": sign(SECRET, body)})
            progress["acknowledged"] = n + 1
            if n == MESSAGES // 3:
                desk.kill_worker()
                desk.start_worker()
            if n == 2 * MESSAGES // 3:
                assert _terminate_connections(database) > 0
        replier.join(timeout=120)
        assert not failures and not replier.is_alive(), failures
        # A last fault once everything is acknowledged: the settling starts from here.
        _terminate_connections(database)
        last_fault = time.monotonic()

        def settled() -> bool:
            inbound, replies = _stored(pg_url)
            return (len(inbound) == MESSAGES and replies["delivered"] == len(acknowledged_replies)
                    and set(shop.delivery_ids()) >= {str(i) for i in acknowledged_replies})

        support.wait_for(settled, timeout=90, interval=0.25, what="every message stored and every reply delivered")
        settle_seconds = time.monotonic() - last_fault

        inbound, replies = _stored(pg_url)
        assert sorted(inbound) == sorted(sent.items())  # each once, intact
        assert replies == Counter({"delivered": len(acknowledged_replies)})  # no reply stored twice
        on_the_wire = Counter(shop.delivery_ids())
        assert set(on_the_wire) == {str(i) for i in acknowledged_replies}  # once each, after the shop's drop
        repeats = sum(count - 1 for count in on_the_wire.values())
        assert repeats <= WORKER_THREADS, on_the_wire.most_common(5)  # only sends in flight at the kill
        # 5-7 s on the 2-core test machine run alone; the bound leaves room for a loaded machine. (It
        # took 39-83 s while each API-channel send made a new HTTP client, and with it a TLS context; and
        # 44-88 s on a loaded machine while each sweep rang every waiting reply again: store.jobs.)
        assert settle_seconds < 30, settle_seconds
