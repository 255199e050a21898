"""dramatiq's own Prometheus figures from ``omnidesk worker`` when ``OMNIDESK_WORKER_METRICS_PORT`` is
set: a real worker process on PostgreSQL and RabbitMQ routes a message and counts the job. And
which broker a URL asks for; one of another kind is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import brokers
from tests import support
from tests.support import Running, wait_for
from tests.workers.test_broker_rabbitmq import RABBITMQ_URL, queue_prefix

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def prefix() -> Iterator[str]:
    with queue_prefix() as name:
        yield name


@pytest.fixture
def desk(pg_url: str, tmp_path: Path, prefix: str) -> Iterator[Running]:
    """omnidesk's web part in this process on PostgreSQL and RabbitMQ; its worker threads stopped."""
    with support.running_omnidesk("postgres", pg_url, tmp_path, scheduler=False, OMNIDESK_BROKER_URL=RABBITMQ_URL,
                                  OMNIDESK_BROKER_QUEUE_PREFIX=prefix) as running:
        running.worker.stop()  # the worker process below does the work
        yield running
    running.broker.close()


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "cli", "worker", "--threads", "2"], cwd=ROOT, env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _dramatiq_figures(port: int) -> dict[tuple[str, str], float]:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return {}
    return {(s.name, s.labels.get("actor_name", "")): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_worker_serves_dramatiq_figures_when_asked(desk: Running, tmp_path: Path) -> None:
    port = support.free_port()
    env = {**os.environ, "OMNIDESK_WORKER_METRICS_PORT": str(port), "dramatiq_prom_db": str(tmp_path / "prom")}
    (tmp_path / "prom").mkdir()
    proc = _worker(env, tmp_path / "worker.log")
    try:
        agent = desk.agent("Ana")
        channel_id, secret = desk.api_channel("http://127.0.0.1:9/replies")
        payload = {"message_id": "m-1", "from": {"id": "c1"}, "text": "hello"}
        assert desk.post_inbound(channel_id, secret, payload).status_code == 202

        def routed() -> bool:
            items = desk.ok("GET", "/conversations")["items"]
            return bool(items) and items[0]["assignee_id"] == agent["id"]

        wait_for(routed, timeout=30, what="routing by the worker process")
        figures = wait_for(lambda: (f := _dramatiq_figures(port)).get(("dramatiq_messages_total", "route_batch"))
                           and f, timeout=10, what="the worker's figures")
        assert figures[("dramatiq_messages_total", "route_batch")] == 1
        assert figures.get(("dramatiq_message_errors_total", "route_batch"), 0) == 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("url", ["http://127.0.0.1:5672", "sqs://queue", "kafka://x"])
def test_a_broker_url_of_another_kind_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported scheme"):
        brokers.broker_kind(url)


@pytest.mark.parametrize(("url", "kind"), [(None, "stub"), ("", "stub"), ("redis://127.0.0.1:6379/0", "redis"),
                                           ("AMQP://guest:guest@127.0.0.1:5672/", "rabbitmq"),
                                           ("amqps://h/", "rabbitmq")])
def test_broker_kinds(url: Any, kind: str) -> None:
    assert brokers.broker_kind(url) == kind
