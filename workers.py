"""The broker and the actors. Each actor loads ids from the store and calls into router/connectors.

Broker: Redis when ``OMNIDESK_REDIS_URL`` is set, else an in-process broker served by worker
threads in the same process (``omnidesk up``). Either way the store is the record: a lost job is
found again by ``sweep``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, ClassVar

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage, Middleware

import brokers
import delivery
import fetching
import pacing
from connectors.base import Capabilities, Event, InboundMessage
from connectors.errors import ConfigError, PermanentError, TransientError
from router import ack as acknowledgements
from router import automation
from router.presence import sweep_away
from router.reassign import sweep_reassign
from router.route import fill_agent, route_conversations
from router.sla import deadline, sweep_sla
from router.widening import sweep_skills
from store import channels as channel_store
from store import fetches, jobs, outbound
from store.assignment import Outcome, wake_snoozed
from store.assignment_batch import HELD
from store.db import get_engine
from store.events import prune as prune_events
from store.inbound import Recorded, record_inbound
from store.models import utcnow
from store.settings import get_settings

log = logging.getLogger("omnidesk.workers")

HEARTBEAT_TIMEOUT_MS = 60_000  # dramatiq's default, fixed here: COUNTED_FRESH_MS depends on it
SIGNAL_CHECK = 0.2  # seconds: how late run_forever may notice a stop

dramatiq.set_broker(StubBroker())  # replaced by setup_broker(); actors are re-declared on it


def setup_broker(redis_url: str | None = None, *, namespace: str | None = None) -> dramatiq.Broker:
    """Make the broker current and declare every actor on it."""
    settings = get_settings()
    # brokers.py: OMNIDESK_BROKER_URL (amqp:// RabbitMQ, redis://) wins, else redis_url, else in-process.
    url = brokers.configured_url(settings.broker_url, redis_url)
    broker = brokers.create_broker(url, namespace=namespace or settings.redis_namespace,
                                   heartbeat_timeout_ms=HEARTBEAT_TIMEOUT_MS)
    broker.add_middleware(CurrentMessage())
    broker.add_middleware(RouteAttempts())
    broker.add_middleware(WarmRouter())
    dramatiq.set_broker(broker)
    brokers.declare_actors(broker, ACTORS, queue_prefix=settings.broker_queue_prefix)
    # Send pacing: the broker's Redis (its namespace), else OMNIDESK_REDIS_URL, else this process.
    pacing.configure(broker, namespace=namespace or settings.redis_namespace, redis_url=settings.redis_url)
    return broker


def enqueue(actor: dramatiq.Actor, *args: Any, delay_ms: int | None = None) -> None:
    """Ring the doorbell; a broker that is down only delays the work (the sweep finds it)."""
    try:
        actor.send_with_options(args=args, delay=delay_ms)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not enqueue %s%s: %s (the sweep will)", actor.actor_name, args, exc)


# -- the doorbell: what the web processes and the scheduler ring ------------------------------------
# Each rings one job; a broker that is down only delays the work (the sweep finds it in the store).


def ingest(channel_id: int, events: Sequence[Event], *, cursor: dict[str, Any] | None = None) -> list[Recorded]:
    """Store inbound events (and a pull channel's ``cursor``) in one transaction, then ring the
    router once for the conversations that need it. Webhooks and pollers both come this way."""
    results = record_inbound(get_engine(), channel_id, events, cursor=cursor, deadline=deadline)
    after_inbound(results, events)
    return results


def ring_routing(conversation_ids: Iterable[int]) -> None:
    """Conversations that need an agent (reassigned, reopened, team or language changed)."""
    enqueue_routing(conversation_ids)


def ring_delivery(message_id: int) -> None:
    """A reply stored ``pending`` (or sent again)."""
    enqueue(deliver, message_id)


def ring_pull(agent_id: int) -> None:
    """An agent may have spare capacity (came online, resolved, capacity raised)."""
    enqueue(pull_queue, agent_id)


def ring_poll(channel_id: int) -> None:
    """A pull channel was created or changed: poll it now."""
    enqueue(poll_channel, channel_id)


# Conversation ids per route_batch job: one transaction each, small enough to keep the agents'
# row locks short and a retried batch cheap.
ROUTE_BATCH = 200


def after_inbound(results: list[Recorded], events: Sequence[Event] = ()) -> None:
    """After a commit of inbound messages: one routing job per chunk of the conversations that
    need it, not one per conversation. The store counted these jobs' first attempts. With the
    ``events`` stored (one per result), one acknowledgement job for the conversations that got a
    new customer message (not a receipt, an edit or a redelivery)."""
    enqueue_routing((r.conversation_id for r in results if r.needs_routing and r.conversation_id is not None),
                    counted=True)
    for recorded in results:
        for attachment_id in recorded.fetches:
            enqueue(fetch_attachment, attachment_id)
    fresh = list(dict.fromkeys(r.conversation_id for e, r in zip(events, results, strict=False)
                               if isinstance(e, InboundMessage) and not r.duplicate and r.conversation_id is not None))
    if fresh and get_settings().ack_enabled:
        enqueue(acknowledge, fresh)


def enqueue_routing(conversation_ids: Iterable[int], *, counted: bool = False) -> None:
    ids = list(dict.fromkeys(conversation_ids))
    for start in range(0, len(ids), ROUTE_BATCH):
        enqueue(route_batch, ids[start : start + ROUTE_BATCH], counted)


# A job whose attempt the store counted in advance uses that count only on its first delivery,
# and only while younger than COUNTED_FRESH_MS. A job comes back after its worker died only once
# the Redis broker has missed that worker's heartbeat for HEARTBEAT_TIMEOUT_MS: older by then.
COUNTED_FRESH_MS = HEARTBEAT_TIMEOUT_MS // 3


def first_delivery(message: dramatiq.Message[Any]) -> bool:
    """Whether ``message`` is on its first delivery: not a retry, and not back from a worker that
    died with it (see COUNTED_FRESH_MS)."""
    if message.options.get("retries", 0):
        return False
    return time.time() * 1000 - message.message_timestamp < COUNTED_FRESH_MS


class WarmRouter(Middleware):
    """A worker that starts loads the router's language models in the background (seconds), so
    the first routing job does not wait for them (it waits only if it comes before they are in)."""

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        threading.Thread(target=_warm, name="omnidesk-warm-router", daemon=True).start()


def _warm() -> None:
    try:
        automation.warm()
    except Exception:  # noqa: BLE001 - the first routing job will say what is wrong
        log.exception("could not load the language models")


class RouteAttempts(Middleware):
    """Counts a routing attempt for each conversation of a routing job before the job runs, so
    that a conversation whose routing keeps failing, or killing its worker, stops after
    ``max_attempts`` (the router gives it up with its last error).

    A job rung by the inbound store (``counted=True``) had its attempt counted in the transaction
    that stored the messages, which saves a write per conversation on the busiest path: on its
    first delivery it is not counted again. A retry, or the same job back after its worker died,
    counts like any other. The actor asks :meth:`todo` which conversations are still to route.
    """

    # actor name -> (conversation ids, counted) from the job's arguments
    JOBS: ClassVar[dict[str, Callable[..., tuple[list[int], bool]]]] = {
        "route": lambda conversation_id: ([conversation_id], False),
        "route_batch": lambda conversation_ids, counted=False: (list(conversation_ids), counted),
    }
    _state = threading.local()

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message[Any]) -> None:
        arguments = self.JOBS.get(message.actor_name)
        if arguments is None:
            return
        ids, counted = arguments(*message.args, **message.kwargs)
        if not (counted and first_delivery(message)):
            ids = jobs.begin_route_attempts(get_engine(), ids)  # only those still waiting for routing
        self._state.todo = ids

    def after_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], *,
                              result: Any = None, exception: BaseException | None = None) -> None:
        self._state.todo = None

    after_skip_message = after_process_message

    @classmethod
    def todo(cls, conversation_ids: list[int]) -> list[int]:
        """The conversations of the running job still to route (counted). Called outside a
        worker (a test, a script) nothing was counted: all of them."""
        todo = getattr(cls._state, "todo", None)
        return conversation_ids if todo is None else todo


@dramatiq.actor(queue_name="route", max_retries=20, min_backoff=500, max_backoff=30_000)
def route_batch(conversation_ids: list[int], counted: bool = False) -> None:
    """Route conversations in one transaction (see ``router.route.route_conversations``).
    ``counted``: the store counted this job's first attempt (see :class:`RouteAttempts`)."""
    _route(RouteAttempts.todo(conversation_ids))


@dramatiq.actor(queue_name="route", max_retries=20, min_backoff=500, max_backoff=30_000)
def route(conversation_id: int) -> None:
    """Route one conversation (the API's reassignments, reopenings and jobs already queued)."""
    _route(RouteAttempts.todo([conversation_id]))


def _route(todo: list[int]) -> None:
    """Route conversations together. When the batch fails, each is tried alone, so one
    conversation that cannot be routed does not spend the attempts of the others; the job then
    fails and its retry finds only those still needing routing."""
    if not todo:
        return
    engine = get_engine()
    max_attempts = get_settings().max_attempts
    try:
        _again(route_conversations(engine, todo, max_attempts=max_attempts))
        return
    except Exception as exc:
        if len(todo) == 1:
            jobs.route_error(engine, todo, f"{type(exc).__name__}: {exc}")
            raise
        log.warning("routing a batch of %d failed (%s: %s); routing each alone", len(todo), type(exc).__name__, exc)
    failed: Exception | None = None
    for conversation_id in todo:
        try:
            _again(route_conversations(engine, [conversation_id], max_attempts=max_attempts))
        except Exception as exc:  # noqa: BLE001 - kept and raised once the others had their turn
            jobs.route_error(engine, [conversation_id], f"{type(exc).__name__}: {exc}")
            failed = exc
    if failed is not None:
        raise failed


# A conversation another transaction held (for milliseconds: an acknowledgement being claimed,
# another router, an agent's change), at its automations or its assignment, is routed again this
# much later, not left for the sweep.
HELD_AGAIN_MS = 300


def _again(outcomes: Sequence[Outcome]) -> None:
    held = [o.conversation_id for o in outcomes if o.skipped == HELD]
    if held:
        enqueue(route_batch, held, delay_ms=HELD_AGAIN_MS)


@dramatiq.actor(queue_name="route", max_retries=5, min_backoff=500)
def pull_queue(agent_id: int) -> None:
    fill_agent(get_engine(), agent_id)


@dramatiq.actor(queue_name="deliver", max_retries=0)
def deliver(message_id: int, paced_at: float | None = None) -> None:
    """Send one reply (``delivery.deliver_one``). Transient failures come back later (the message
    stays pending with its reason); permanent ones mark it failed with the reason the agent reads.
    The claim's lease is renewed while the send runs and until its outcome is recorded. ``paced_at``
    is no longer used (jobs rung before slots were reserved only near-term may still carry it)."""
    engine = get_engine()
    claim = outbound.claim(engine, message_id)
    if claim is None:
        return
    with heartbeat(lambda: outbound.renew_lease(engine, message_id), every=outbound.LEASE / 3):
        delivery.deliver_one(engine, claim, _bells())


def _bells() -> delivery.Bells:
    return delivery.Bells(
        again=lambda message_id, delay: enqueue(deliver, message_id, delay_ms=int(delay * 1000)),
        fall_back=lambda message_id, fallback, delay: enqueue(fall_back, message_id, fallback,
                                                              delay_ms=int(delay * 1000)))


@contextmanager
def heartbeat(renew: Callable[[], object], *, every: float) -> Iterator[None]:
    """Call ``renew()`` every ``every`` seconds in a thread while the block runs (a lease kept
    alive while a send is in flight). A failed renewal is logged; the next one may work."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            try:
                renew()
            except Exception as exc:  # noqa: BLE001 - the lease runs out by itself if this keeps failing
                log.warning("renewing a lease failed: %s", type(exc).__name__)

    thread = threading.Thread(target=beat, name="lease-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every)  # a renewal stuck on the database must not hold the job


@dramatiq.actor(queue_name="deliver", max_retries=3, min_backoff=1000)
def fall_back(message_id: int, fallback: int) -> None:
    """A web chat reply whose visitor was still here when it was sent: by email too if they have
    left since without reading it (``delivery.fall_back_now``)."""
    delivery.fall_back_now(get_engine(), message_id, fallback, _bells())


@dramatiq.actor(queue_name="fetch", max_retries=0)
def fetch_attachment(attachment_id: int) -> None:
    """Fetch one file the provider holds (fetching.py): claimed like a reply, so two workers never
    fetch it at once; the lease is renewed while the download runs."""
    engine = get_engine()
    claim = fetches.claim(engine, attachment_id)
    if claim is None:
        return
    with heartbeat(lambda: fetches.renew_lease(engine, attachment_id), every=fetches.LEASE / 3):
        fetching.fetch_one(engine, claim, lambda aid, delay: enqueue(fetch_attachment, aid,
                                                                     delay_ms=int(delay * 1000)))


def _poll_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


@dramatiq.actor(queue_name="poll", max_retries=0, time_limit=30 * 60 * 1000)
def poll_channel(channel_id: int) -> None:
    """Import what is new on a pull channel, batch by batch, each committed with its cursor.
    One poller a channel at a time (a lease in the store); a poll asked for while one runs makes
    that one look again when it is done, so nothing announced is left waiting for the interval."""
    engine = get_engine()
    channel = channel_store.load_channel(engine, channel_id)
    if channel is None:
        return
    owner, lease = _poll_owner(), _poll_lease(channel.kind)
    if not channel_store.claim_poll(engine, channel_id, owner, lease):
        return  # another poller has this channel right now; it will look again
    started = utcnow()
    again = False
    try:
        channel = channel_store.load_channel(engine, channel_id)  # as it is now that this poller holds it
        connector = channel_store.connector_for(channel)
        # The lease is renewed while the poll runs (a slow page is not taken over), and after each
        # batch, which stops the poll should another poller hold the channel by then.
        with heartbeat(lambda: channel_store.extend_poll(engine, channel_id, owner, lease), every=lease / 3):
            for batch in connector.poll(channel.cursor):
                ingest(channel_id, batch.events, cursor=batch.cursor)
                if not channel_store.extend_poll(engine, channel_id, owner, lease):
                    log.warning("channel %s: lost the poll lock; stopping", channel_id)
                    return
        again = channel_store.mark_ok(engine, channel_id, connector.poll_interval, started=started)
    except TransientError as exc:  # e.g. a rate limit: no poll before the provider's reset
        again = _poll_failed(engine, channel, channel_id, exc.reason, started, wait=exc.retry_after)
    except (ConfigError, PermanentError) as exc:
        again = _poll_failed(engine, channel, channel_id, exc.reason, started)
    except Exception as exc:  # a bug, not the channel: kept for the admin, tried again
        log.error("channel %s: poll failed: %s", channel_id, type(exc).__name__)
        log.debug("channel %s: poll failed", channel_id, exc_info=True)  # the text may quote customer data
        again = _poll_failed(engine, channel, channel_id, f"{type(exc).__name__}: {exc}", started)
    finally:
        channel_store.release_poll(engine, channel_id, owner)
    if again:
        enqueue(poll_channel, channel_id)


def _poll_lease(kind: str) -> float:
    from connectors import connector_class

    try:
        return connector_class(kind).capabilities.poll_lease
    except (KeyError, ImportError):
        return Capabilities().poll_lease


def _poll_failed(engine: Any, channel: Any, channel_id: int, reason: str, started: Any,
                 *, wait: float | None = None) -> bool:
    """Keep the reason for the admin and back off: ``wait`` seconds when the provider said how
    long (a rate limit's reset), else longer after each error in a row."""
    errors = (channel.error_count if channel is not None else 0) + 1
    backoff = wait if wait is not None else min(3600.0, 15.0 * 2 ** min(errors, 8))
    return channel_store.mark_error(engine, channel_id, reason, backoff=backoff, started=started)


@dramatiq.actor(queue_name="sweep", max_retries=0)
def sweep() -> None:
    """Re-enqueue whatever the store says is still to do."""
    settings = get_settings()
    enqueue_routing(wake_snoozed(get_engine()))
    due = jobs.due_work(get_engine(), grace=settings.sweep_grace)
    enqueue_routing(due.route)
    for message_id in due.deliver:
        enqueue(deliver, message_id)
    for agent_id in due.pull:
        enqueue(pull_queue, agent_id)
    for channel_id in due.poll:
        enqueue(poll_channel, channel_id)
    for attachment_id in fetches.due(get_engine(), grace=settings.sweep_grace):
        enqueue(fetch_attachment, attachment_id)
    if any((due.route, due.deliver, due.poll)):
        log.info("sweep: %d route, %d deliver, %d pull, %d poll", len(due.route), len(due.deliver),
                 len(due.pull), len(due.poll))
    prune_events(get_engine(), settings.events_keep_hours)  # the event stream's old rows
    # Inboxes that stopped beating: away (their conversations back to the queue where the team says so).
    enqueue_routing(sweep_away(get_engine(), settings.presence_timeout))
    enqueue_routing(sweep_skills(get_engine()))  # waited long enough for a skilled agent: any agent
    sweep_sla(get_engine())  # SLA clocks: near-breach and breach events, once each
    sweep_reassign(get_engine(), utcnow())  # assignees who left a customer waiting: to the next agent


@dramatiq.actor(queue_name="acknowledge", max_retries=3, min_backoff=1000)
def acknowledge(conversation_ids: list[int]) -> None:
    """Send each conversation's automatic acknowledgement where the rule gives one (router.ack);
    its reply is delivered like any other. Rung after inbound messages are stored."""
    settings = get_settings()
    for message_id in acknowledgements.acknowledge_all(
            get_engine(), conversation_ids, period=timedelta(hours=settings.ack_period_hours),
            long_wait=settings.ack_long_wait, default_language=settings.ack_language):
        enqueue(deliver, message_id)


ACTORS: list[dramatiq.Actor] = [route, route_batch, pull_queue, deliver, fetch_attachment, poll_channel, sweep,
                                acknowledge]


def stop_worker(worker: dramatiq.Worker) -> None:
    """Stop taking jobs; let running ones finish within ``shutdown_grace``, then give up on them
    (dramatiq would wait ten minutes: longer than any supervisor waits before SIGKILL)."""
    worker.stop(timeout=int(get_settings().shutdown_grace * 1000))


def start_worker(broker: dramatiq.Broker, threads: int | None = None) -> dramatiq.Worker:
    brokers.enable_worker_metrics(broker, get_settings().worker_metrics_port)  # dramatiq's, when asked
    worker = dramatiq.Worker(broker, worker_threads=threads or get_settings().worker_threads, worker_timeout=100)
    worker.start()
    return worker


def run_forever(stop: threading.Event, *, on_stop: Callable[[], None] | None = None) -> None:
    """In the main thread, until ``stop`` is set (by a signal's handler: ``cli.stop_on_signals``);
    then ``on_stop``. It checks in short sleeps, never in one unbounded ``stop.wait()``: Python runs
    a signal's handler in the main thread only, and a signal the kernel gives another thread does
    not end the main thread's wait on a lock (a worker outlived its SIGINT so in CI)."""
    while not stop.is_set():
        time.sleep(SIGNAL_CHECK)
    if on_stop:
        on_stop()


class Scheduler:
    """Rings the sweep every few seconds and keeps one watcher thread per channel that can tell
    of new data at once (IMAP IDLE): exactly one scheduler process runs."""

    def __init__(self, interval: float | None = None) -> None:
        self.interval = interval or get_settings().sweep_interval
        self._watchers: dict[int, tuple[Any, threading.Event, threading.Thread]] = {}

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            enqueue(sweep)
            try:
                self._reconcile()  # a new or changed channel is watched from the next tick
            except Exception:
                log.exception("scheduler: watching channels failed")
            stop.wait(self.interval)
        for _, halt, _thread in self._watchers.values():
            halt.set()

    def _reconcile(self) -> None:
        from sqlalchemy import select

        from connectors import connector_class
        from store.sql import channels

        engine = get_engine()
        with engine.connect() as conn:
            rows = conn.execute(select(channels).where(channels.c.enabled.is_(True))).all()
        wanted = {r.id: r for r in rows if _can_watch(connector_class, r.kind)}
        for channel_id, (version, halt, thread) in list(self._watchers.items()):
            row = wanted.get(channel_id)
            if row is None or row.updated_at != version or not thread.is_alive():
                halt.set()
                del self._watchers[channel_id]
        for channel_id, row in wanted.items():
            if channel_id not in self._watchers:
                self._watchers[channel_id] = (row.updated_at, *self._watch(row))

    def _watch(self, row: Any) -> tuple[threading.Event, threading.Thread]:
        halt = threading.Event()
        channel_id = row.id

        def notify() -> None:
            channel_store.poll_now(get_engine(), channel_id)
            enqueue(poll_channel, channel_id)

        def loop() -> None:
            try:
                channel_store.connector_for(row).watch(halt, notify)
            except Exception:
                log.exception("channel %s: watcher stopped", channel_id)

        thread = threading.Thread(target=loop, name=f"watch-{channel_id}", daemon=True)
        thread.start()
        return halt, thread


def _can_watch(connector_class: Callable[[str], Any], kind: str) -> bool:
    try:
        return bool(connector_class(kind).capabilities.watch)
    except (KeyError, ImportError, AttributeError):
        return False
