"""RabbitMQ as the broker (``OMNIDESK_BROKER_URL=amqp://...``), against the RabbitMQ on the machine:
a message is stored, routed and its reply delivered through it (a retry waiting in the delay queue);
jobs sent while no worker runs wait in durable queues for the next worker; health names a broker
that does not answer. Each test uses queue names of its own (``OMNIDESK_BROKER_QUEUE_PREFIX``) and
deletes them afterwards."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import workers
from tests import support
from tests.support import CallbackServer, Running, wait_for

RABBITMQ_URL = os.environ.get("OMNIDESK_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/%2F")
QUEUES = ("route", "deliver", "fetch", "poll", "sweep", "acknowledge")


def _channel() -> Any:
    import pika

    try:
        connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    except pika.exceptions.AMQPError as exc:
        support.unavailable("RabbitMQ", repr(exc))
    return connection


def _queue_depth(prefix: str, queue: str) -> int:
    """Messages ready in one of our queues (a passive declare fails if it does not exist)."""
    connection = _channel()
    try:
        return connection.channel().queue_declare(queue=prefix + queue, passive=True).method.message_count
    finally:
        connection.close()


def _delete_queues(prefix: str) -> None:
    connection = _channel()
    try:
        channel = connection.channel()
        for queue in QUEUES:
            for name in (prefix + queue, f"{prefix}{queue}.DQ", f"{prefix}{queue}.XQ"):
                channel.queue_delete(queue=name)
    finally:
        connection.close()


@contextmanager
def queue_prefix() -> Iterator[str]:
    """Queue names of a test's own (RabbitMQ must be there: fails under CI, else skips), deleted after."""
    _channel().close()
    name = f"omnidesk-test-{secrets.token_hex(4)}."
    try:
        yield name
    finally:
        _delete_queues(name)


@pytest.fixture
def prefix() -> Iterator[str]:
    with queue_prefix() as name:
        yield name


@pytest.fixture
def desk(backend: str, database_url: str, tmp_path: Any, prefix: str) -> Iterator[Running]:
    """omnidesk on RabbitMQ (the database as ``backend`` says), without the sweep: whatever is done
    here went through RabbitMQ, not through the store's safety net."""
    with support.running_omnidesk(backend, database_url, tmp_path, scheduler=False,
                                  OMNIDESK_BROKER_URL=RABBITMQ_URL, OMNIDESK_BROKER_QUEUE_PREFIX=prefix,
                                  OMNIDESK_RETRY_BASE="0.2") as running:
        yield running
    running.broker.close()


def _routed(desk: Running) -> dict[str, Any] | None:
    items = desk.ok("GET", "/conversations")["items"]
    return items[0] if items and items[0]["assignee_id"] else None


def test_a_message_is_stored_routed_and_answered_through_rabbitmq(
    desk: Running, callback: CallbackServer, prefix: str
) -> None:
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    assert isinstance(desk.broker, RabbitmqBroker)
    assert {a.queue_name for a in workers.ACTORS} == {prefix + q for q in QUEUES}
    for queue in QUEUES:  # declared on the server when the broker was set up, before any job
        assert _queue_depth(prefix, queue) == 0
    agent = desk.agent("Ana")
    channel_id, secret = desk.api_channel(callback.url)
    payload = {"message_id": "r-1", "from": {"id": "c1", "name": "Carla"}, "text": "Is my order shipped?"}
    assert desk.post_inbound(channel_id, secret, payload).status_code == 202
    conv = wait_for(lambda: _routed(desk), timeout=20, what="routing through RabbitMQ")
    assert conv["assignee_id"] == agent["id"]
    callback.answers = [503]  # the first attempt fails: the retry waits in RabbitMQ's delay queue
    reply = desk.ok("POST", f"/conversations/{conv['id']}/messages", token=agent["token"], json={"text": "Yes, today"})
    wait_for(lambda: len(callback.requests) == 2, timeout=20, what="the reply delivered through RabbitMQ")
    assert callback.requests[0][1] == callback.requests[1][1]
    body = json.loads(callback.requests[1][1])
    assert body["message_id"] == str(reply["id"]) and body["text"] == "Yes, today"
    assert body["to"] == {"id": "c1"}


def test_jobs_wait_in_durable_queues_for_the_next_worker(desk: Running, prefix: str, callback: CallbackServer) -> None:
    desk.agent("Ana", capacity=20)
    channel_id, secret = desk.api_channel(callback.url)
    desk.worker.stop()  # no worker: the routing jobs stay in RabbitMQ
    for n in range(5):
        payload = {"message_id": f"w-{n}", "from": {"id": f"c{n}"}, "text": f"hello {n}"}
        assert desk.post_inbound(channel_id, secret, payload).status_code == 202
    wait_for(lambda: _queue_depth(prefix, "route") >= 1, what="routing jobs queued in RabbitMQ")
    assert not any(i["assignee_id"] for i in desk.ok("GET", "/conversations")["items"])
    desk.broker.close()
    # A new process, as it were: a new broker object, a new worker; the jobs were kept by RabbitMQ.
    desk.broker = workers.setup_broker()
    desk.worker = workers.start_worker(desk.broker, threads=2)

    def all_routed() -> bool:
        items = desk.ok("GET", "/conversations")["items"]
        return len(items) == 5 and all(i["assignee_id"] for i in items)

    wait_for(all_routed, timeout=20, what="the queued jobs routed by the new worker")
    wait_for(lambda: _queue_depth(prefix, "route") == 0, what="the route queue drained")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_health_names_a_rabbitmq_that_does_not_answer(
    backend: str, database_url: str, tmp_path: Any, prefix: str
) -> None:
    port = support.free_port()  # nothing listens there
    with support.running_omnidesk(backend, database_url, tmp_path, scheduler=False,
                                  OMNIDESK_BROKER_URL=f"amqp://guest:guest@127.0.0.1:{port}/%2F",
                                  OMNIDESK_BROKER_QUEUE_PREFIX=prefix) as desk:
        answer = desk.http.get("/healthz")
        assert answer.status_code == 503
        assert answer.json()["database"] == "ok"
        assert answer.json()["broker"].startswith("error")
        metrics = desk.http.get("/metrics").text
        assert 'omnidesk_up{dependency="broker"} 0.0' in metrics
        assert 'omnidesk_up{dependency="database"} 1.0' in metrics
        # The API still takes messages: the store is the record, the broker only rings.
        channel_id, secret = desk.api_channel("http://127.0.0.1:9/replies")
        payload = {"message_id": "h-1", "from": {"id": "c1"}, "text": "anyone?"}
        assert desk.post_inbound(channel_id, secret, payload).status_code == 202
    desk.broker.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_health_is_ok_on_a_running_rabbitmq(desk: Running) -> None:
    answer = desk.http.get("/healthz")
    assert answer.status_code == 200, answer.text
    assert answer.json()["broker"] == "ok"
