"""``GET /metrics``: Prometheus text.

The figures the store knows (messages in and out, recent replies by status, the delivery backlog,
the queue, routing jobs, latencies, channels in error) are read from the database at scrape time by
``StoreCollector``, so every web process of a deployment answers the same; ``omnidesk_up`` says
which dependency is down. The process's own figures (CPU, memory, file descriptors) come from
prometheus_client's default registry. Per-job figures of the workers are dramatiq's, served by each
worker when ``OMNIDESK_WORKER_METRICS_PORT`` is set (see ``brokers.enable_worker_metrics``).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator, Sequence

import dramatiq
from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text

import brokers
from store import metrics as figures
from store.db import get_engine
from store.models import utcnow

log = logging.getLogger("omnidesk.web.metrics")

router = APIRouter(tags=["health"])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
QUANTILES = (0.5, 0.9, 0.99)
REPLY_WINDOW = 50_000  # messages (by id) over which replies are counted by status


def quantile(values: Sequence[float], q: float) -> float:
    """The nearest-rank quantile ``q`` of ``values`` (NaN when there are none)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class StoreCollector(Collector):
    """Reads the figures from the database at each scrape. Message totals are kept per database
    (``figures.MessageTotals``): after the first scrape only new rows are counted."""

    def __init__(self) -> None:
        self._totals: dict[str, figures.MessageTotals] = {}
        self._lock = threading.Lock()

    def totals_for(self, url: str) -> figures.MessageTotals:
        with self._lock:
            return self._totals.setdefault(url, figures.MessageTotals())

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("omnidesk_up", "Whether a dependency answers (1) or not (0).", labels=["dependency"])
        try:
            with get_engine().connect() as conn:
                conn.execute(text("SELECT 1"))
            database = True
        except Exception as exc:  # noqa: BLE001 - a scrape says the database is down, it does not fail
            log.warning("metrics: the database did not answer: %s", type(exc).__name__)
            database = False
        up.add_metric(["database"], int(database))
        if database:
            yield from self._store()
        try:
            brokers.ping(dramatiq.get_broker())
            up.add_metric(["broker"], 1)
        except Exception as exc:  # noqa: BLE001
            log.warning("metrics: the broker did not answer: %s", type(exc).__name__)
            up.add_metric(["broker"], 0)
        yield up

    def _store(self) -> Iterator[Metric]:
        engine = get_engine()
        totals = self.totals_for(engine.url.render_as_string(hide_password=True)).count(engine)
        with engine.connect() as conn:
            states = figures.channel_states(conn)
            queue = figures.queue(conn)
            routing = figures.routing(conn)
            replies = figures.reply_statuses(conn, window=REPLY_WINDOW)
            backlog = figures.delivery_backlog(conn)
            routing_latency = figures.routing_latencies(conn)
            delivery_latency = figures.delivery_latencies(conn)
        kinds = {channel.id: channel.kind for channel in states}

        def labels(channel_id: int, *more: str) -> list[str]:
            return [str(channel_id), kinds.get(channel_id, ""), *more]

        family = CounterMetricFamily("omnidesk_messages", "Messages stored, by channel and direction (in|out).",
                                     labels=["channel", "kind", "direction"])
        for (channel_id, direction), n in sorted(totals.items()):
            family.add_metric(labels(channel_id, direction), n)
        yield family
        family = GaugeMetricFamily("omnidesk_recent_replies",
                                   f"Replies (notes left out) by status, among the last {REPLY_WINDOW} messages.",
                                   labels=["channel", "kind", "status"])
        for (channel_id, status), n in sorted(replies.items()):
            family.add_metric(labels(channel_id, status), n)
        yield family

        now = utcnow()
        pending = GaugeMetricFamily("omnidesk_delivery_backlog", "Replies still to send (pending or being sent).",
                                    labels=["channel", "kind"])
        pending_oldest = GaugeMetricFamily("omnidesk_delivery_backlog_oldest_seconds",
                                           "Age of the oldest reply still to send.", labels=["channel", "kind"])
        for item in backlog:
            pending.add_metric(labels(item.channel_id), item.count)
            age = (now - item.oldest).total_seconds() if item.oldest else 0.0
            pending_oldest.add_metric(labels(item.channel_id), max(0.0, age))
        yield from (pending, pending_oldest)
        depth = GaugeMetricFamily("omnidesk_queue_depth", "Open conversations waiting for an agent.",
                                  labels=["channel", "kind"])
        oldest = GaugeMetricFamily("omnidesk_queue_oldest_wait_seconds",
                                   "How long the longest-waiting conversation in the queue has waited.",
                                   labels=["channel", "kind"])
        given_up = GaugeMetricFamily("omnidesk_routing_given_up",
                                     "Conversations in the queue that routing gave up on (an admin must look).",
                                     labels=["channel", "kind"])
        for row in queue:
            depth.add_metric(labels(row.channel_id), row.depth)
            wait = (now - row.oldest).total_seconds() if row.oldest else 0.0
            oldest.add_metric(labels(row.channel_id), max(0.0, wait))
            given_up.add_metric(labels(row.channel_id), row.given_up)
        yield from (depth, oldest, given_up)
        yield GaugeMetricFamily("omnidesk_routing_due", "Conversations whose routing job is due.", value=routing.due)
        yield GaugeMetricFamily("omnidesk_routing_failing", "Conversations due for routing whose last attempt failed.",
                                value=routing.failing)
        yield from _latency("omnidesk_routing_latency_seconds",
                            "From waiting_since to the router's assignment, over recent assignments.", routing_latency)
        yield from _latency("omnidesk_delivery_latency_seconds",
                            "From a reply's creation to its sending, over recent replies.", delivery_latency)

        channel_up = GaugeMetricFamily("omnidesk_channel_up", "1 when the channel is enabled and not in error.",
                                       labels=["channel", "kind"])
        errors = GaugeMetricFamily("omnidesk_channel_errors", "The channel's consecutive errors (polls, sends).",
                                   labels=["channel", "kind"])
        for channel in states:
            channel_up.add_metric(labels(channel.id), int(channel.enabled and channel.status == "ok"))
            errors.add_metric(labels(channel.id), channel.error_count)
        yield from (channel_up, errors)


def _latency(name: str, documentation: str, values: Sequence[float]) -> Iterator[Metric]:
    family = GaugeMetricFamily(name, documentation, labels=["quantile"])
    for q in QUANTILES:
        family.add_metric([str(q)], quantile(values, q))
    yield family
    yield GaugeMetricFamily(name.removesuffix("_seconds") + "_samples", f"How many figures {name} is taken over.",
                            value=len(values))


store_registry = CollectorRegistry(auto_describe=False)
store_registry.register(StoreCollector())


@router.get("/metrics", response_class=Response, include_in_schema=False)
def metrics() -> Response:
    """Prometheus text: the store's figures and this process's own."""
    body = generate_latest(store_registry) + generate_latest(REGISTRY)
    return Response(body, media_type=CONTENT_TYPE)
