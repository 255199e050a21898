"""The dramatiq broker of an omnidesk process, chosen by the settings.

``OMNIDESK_BROKER_URL``
    ``amqp://`` (or ``amqps://``): RabbitMQ, whose durable queues keep jobs across a broker restart;
    ``redis://`` (or ``rediss://``): Redis. Unset: Redis at ``OMNIDESK_REDIS_URL`` when that is set,
    else the in-process broker of the embedded default.

Whichever it is, the store stays the record of what is still to do (see ``workers.sweep``): the
broker only rings. On RabbitMQ every actor's queue is declared on the server when the broker is set
up, so a job sent before any worker ever ran waits in a durable queue instead of being dropped.
``OMNIDESK_BROKER_QUEUE_PREFIX`` prefixes the queue names, for several installations on one vhost.

``OMNIDESK_WORKER_METRICS_PORT``: a worker adds dramatiq's own Prometheus middleware and serves its
figures (messages processed, errors, retries, durations per actor) on that port.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import dramatiq
from dramatiq.brokers.stub import StubBroker

log = logging.getLogger("omnidesk.brokers")

AMQP_SCHEMES = ("amqp", "amqps")
REDIS_SCHEMES = ("redis", "rediss", "unix")

# The queue each actor was declared with, before any prefix: setup may run again with another one.
_base_queues: dict[str, str] = {}


def configured_url(broker_url: str | None, redis_url: str | None) -> str | None:
    """The broker the settings choose: ``OMNIDESK_BROKER_URL``, else ``OMNIDESK_REDIS_URL``, else
    None (in-process)."""
    return broker_url or redis_url or None


def describe(url: str | None, *, namespace: str, queue_prefix: str = "") -> str:
    """The broker for people: kind, host and port, never a password."""
    from urllib.parse import urlsplit

    kind = broker_kind(url)
    if kind == "stub":
        return "in-process (neither OMNIDESK_BROKER_URL nor OMNIDESK_REDIS_URL is set)"
    where = urlsplit(url)
    if kind == "redis":
        return f"Redis {where.hostname}:{where.port or 6379}{where.path or '/0'} (namespace {namespace})"
    prefix = f", queue prefix {queue_prefix!r}" if queue_prefix else ""
    return f"RabbitMQ {where.hostname}:{where.port or 5672}{prefix}"


def broker_kind(url: str | None) -> str:
    """``rabbitmq``, ``redis`` or ``stub`` (in-process) for a broker URL; ValueError for others."""
    if not url:
        return "stub"
    scheme = url.split(":", 1)[0].lower()
    if scheme in AMQP_SCHEMES:
        return "rabbitmq"
    if scheme in REDIS_SCHEMES:
        return "redis"
    raise ValueError(f"OMNIDESK_BROKER_URL: unsupported scheme {scheme!r} (amqp:// or redis://)")


def create_broker(url: str | None, *, namespace: str, heartbeat_timeout_ms: int) -> dramatiq.Broker:
    """A new broker for ``url`` (see the module's docstring), without middleware of omnidesk's own."""
    kind = broker_kind(url)
    if kind == "rabbitmq":
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        # confirm_delivery: a send returns only once RabbitMQ has the message (and a queue deleted
        # behind our back is declared again), which is what a shop asking for durability wants.
        return RabbitmqBroker(url=url, confirm_delivery=True)
    if kind == "redis":
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=url, namespace=namespace, heartbeat_timeout=heartbeat_timeout_ms)
    broker = StubBroker()
    broker.emit_after("process_boot")
    return broker


def declare_actors(broker: dramatiq.Broker, actors: Iterable[dramatiq.Actor], *, queue_prefix: str = "") -> None:
    """Put every actor on ``broker``; on RabbitMQ, under ``queue_prefix`` and declared on the server
    at once. A RabbitMQ that is down now only delays that: sending declares the queue again."""
    actors = list(actors)
    rabbit = broker_kind_of(broker) == "rabbitmq"
    for actor in actors:
        base = _base_queues.setdefault(actor.actor_name, actor.queue_name)
        actor.queue_name = queue_prefix + base if rabbit else base
        actor.broker = broker
        broker.declare_actor(actor)
    if not rabbit:
        return
    for queue_name in sorted({actor.queue_name for actor in actors}):
        try:
            broker.declare_queue(queue_name, ensure=True)
        except Exception as exc:  # noqa: BLE001 - the broker is a doorbell: the sweep catches up
            log.warning("RabbitMQ: could not declare queue %s yet: %s", queue_name, type(exc).__name__)


def broker_kind_of(broker: dramatiq.Broker) -> str:
    """``rabbitmq``, ``redis`` or ``stub`` for a broker object."""
    name = type(broker).__name__
    return {"RabbitmqBroker": "rabbitmq", "RedisBroker": "redis"}.get(name, "stub")


def ping(broker: dramatiq.Broker) -> None:
    """Raise when ``broker``'s server does not answer (the in-process broker always answers)."""
    kind = broker_kind_of(broker)
    if kind == "redis":
        broker.client.ping()  # type: ignore[attr-defined]
    elif kind == "rabbitmq":
        import pika

        # A connection of its own: the broker's are per thread and may sit idle past a heartbeat.
        params = broker.parameters  # type: ignore[attr-defined]
        first = params[0] if isinstance(params, list) else params
        probe = pika.ConnectionParameters(host=first.host, port=first.port, virtual_host=first.virtual_host,
                                          credentials=first.credentials, ssl_options=first.ssl_options,
                                          connection_attempts=1, socket_timeout=3, blocked_connection_timeout=3)
        pika.BlockingConnection(probe).close()


def enable_worker_metrics(broker: dramatiq.Broker, port: int | None) -> bool:
    """With a ``port``, add dramatiq's Prometheus middleware to a worker's ``broker`` and serve its
    figures there (``/metrics`` or any path). Returns whether it did.

    dramatiq's own command forks an exposition server; ``omnidesk worker`` runs its workers in one
    process, so the server runs here in a thread, reading the same multiprocess files the middleware
    writes (``dramatiq_prom_db``, default ``$TMPDIR/dramatiq-prometheus``: one folder per host)."""
    if not port:
        return False
    from dramatiq.middleware.prometheus import DB_PATH, Prometheus

    if any(isinstance(m, Prometheus) for m in broker.middleware):
        return True
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = DB_PATH  # before prometheus_client is first imported
    middleware = Prometheus()
    broker.add_middleware(middleware)
    middleware.after_process_boot(broker)  # it makes its metrics then (dramatiq's CLI emits it to all)
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=DB_PATH)
    start_http_server(port, registry=registry)
    log.info("worker metrics on port %d", port)
    return True
