"""Test servers and helpers: scratch PostgreSQL databases, Redis namespaces, a running omnidesk
(real uvicorn on loopback, real dramatiq worker threads) and a shop callback server."""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.fakes.shop import Shop

PG_ADMIN_URL = os.environ.get("OMNIDESK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("OMNIDESK_TEST_REDIS", "redis://127.0.0.1:6379/0")


def unavailable(what: str, why: str) -> None:
    """A real server the tests need is missing: fail under CI, skip on a developer's machine."""
    message = f"{what} is not available: {why}"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI is set: the test servers must be running)", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_admin(database: str | None = None) -> Any:
    """A superuser's connection, in autocommit, to the server's own database or to ``database``."""
    import psycopg

    try:
        return psycopg.connect(PG_ADMIN_URL if database is None else _url_of(database), autocommit=True,
                               connect_timeout=5)
    except psycopg.OperationalError as exc:
        unavailable("PostgreSQL", str(exc).strip())


def create_database(name: str, template: str | None = None) -> str:
    with pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return _url_of(name)


def _url_of(database: str) -> str:
    """The admin's URL with another database."""
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database


def drop_database(name: str) -> None:
    with pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def check_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        unavailable("Redis", str(exc))


def flush_namespace(namespace: str) -> int:
    """Delete every Redis key of one namespace (the broker's queues): a lost queue."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{namespace}:*"))
    if keys:
        client.delete(*keys)
    return len(keys)


def reset_caches() -> None:
    from store.db import get_engine
    from store.settings import get_settings
    from web import webhooks

    for engine in _engines():
        engine.dispose()
    get_engine.cache_clear()
    get_settings.cache_clear()
    webhooks._connectors.clear()


def _engines() -> list[Any]:
    from store.db import get_engine

    try:
        return [get_engine()] if get_engine.cache_info().currsize else []
    except Exception:  # noqa: BLE001
        return []


def channel_and_contact(conn: Any, now: Any, name: str = "t") -> tuple[int, int]:
    """A bare API channel and one contact, written straight into the store (for store tests)."""
    from store.sql import channels, contacts

    channel_id = conn.execute(channels.insert().values(
        kind="api", name=name, config={}, enabled=True, status="ok", error_count=0, created_at=now,
        updated_at=now).returning(channels.c.id)).scalar_one()
    contact_id = conn.execute(contacts.insert().values(name="C", created_at=now)
                              .returning(contacts.c.id)).scalar_one()
    return channel_id, contact_id


def assert_looks_again_after_half_the_wait(look: Any, since: Any, before: Any, after: Any) -> None:
    """``look`` is when a sweep, run between the clock readings ``before`` and ``after``, will look
    again at work waiting since ``since``: half the wait after the sweep (``store.jobs.look_again``).
    The bounds come from those readings, not from a guess of how long the sweep took: a loaded
    machine may take seconds (a millisecond's slack for rounding to microseconds)."""
    slack = timedelta(milliseconds=1)
    earliest, latest = before + (before - since) / 2 - slack, after + (after - since) / 2 + slack
    assert earliest <= look <= latest, f"looks again at {look}, not between {earliest} and {latest}"


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


@dataclass
class Running:
    """An omnidesk under test: HTTP on ``url``, workers in threads, an admin token."""

    url: str
    admin_token: str
    database_url: str
    backend: str
    broker: Any
    namespace: str
    worker: Any
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=30)

    @property
    def engine(self) -> Any:
        from store.db import get_engine

        return get_engine()

    def api(self, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        return self.http.request(method, "/api/v1" + path, headers=headers, **kw)

    def ok(self, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
        response = self.api(method, path, token, **kw)
        assert response.is_success, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def agent(self, name: str, *, capacity: int = 5, online: bool = True, **kw: Any) -> dict[str, Any]:
        email = f"{name.lower().replace(' ', '.')}.{secrets.token_hex(3)}@shop.test"
        agent = self.ok("POST", "/agents", json={"name": name, "email": email, "capacity": capacity, **kw})
        if online:
            self.ok("PUT", f"/agents/{agent['id']}/presence", json={"status": "online"})
        return agent

    def api_channel(self, callback_url: str, secret: str | None = None) -> tuple[int, str]:
        secret = secret or secrets.token_urlsafe(24)
        channel = self.ok("POST", "/channels", json={
            "kind": "api", "name": "Shop backend", "config": {"secret": secret, "callback_url": callback_url}})
        return channel["id"], secret

    def post_inbound(
        self, channel_id: int, secret: str, payload: dict[str, Any], signature: str | None = None
    ) -> httpx.Response:
        from connectors.api import sign

        body = json.dumps(payload).encode()
        return self.http.post(f"/webhooks/{channel_id}", content=body,
                              headers={"X-Omnidesk-Signature": signature or sign(secret, body),
                                       "Content-Type": "application/json"})


@contextmanager
def running_omnidesk(
    backend: str, database_url: str, tmp_path: Any, *, scheduler: bool = True, **env: str
) -> Iterator[Running]:
    """Start omnidesk in this process as ``omnidesk up`` does: migrations, broker, worker threads,
    the scheduler (sweep and channel watchers; ``scheduler=False`` leaves it out) and uvicorn."""
    import uvicorn

    import workers
    from store.agents import admin_token
    from store.db import get_engine, upgrade

    namespace = f"omnidesk-test-{secrets.token_hex(4)}"
    port = free_port()
    values = {
        "OMNIDESK_DATABASE_URL": database_url,
        "OMNIDESK_SECRET_KEY": "test-secret-key",
        "OMNIDESK_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "OMNIDESK_REDIS_NAMESPACE": namespace,
        "OMNIDESK_SWEEP_GRACE": "0.5",
        "OMNIDESK_SWEEP_INTERVAL": "0.5",
        **env,
    }
    if backend == "postgres":
        values["OMNIDESK_REDIS_URL"] = REDIS_URL
    saved = {k: os.environ.get(k) for k in [*values, "OMNIDESK_REDIS_URL"]}
    os.environ.update(values)
    if backend != "postgres":
        os.environ.pop("OMNIDESK_REDIS_URL", None)
    reset_caches()
    worker = server = None
    halt = threading.Event()
    try:
        upgrade()
        token = admin_token(get_engine())
        broker = workers.setup_broker(os.environ.get("OMNIDESK_REDIS_URL"))
        worker = workers.start_worker(broker, threads=4)
        from web.app import create_app

        server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        wait_for(lambda: server.started, what="uvicorn to start")
        running = Running(f"http://127.0.0.1:{port}", token, database_url, backend, broker, namespace, worker)
        if scheduler:
            threading.Thread(target=workers.Scheduler().run, args=(halt,), name="scheduler", daemon=True).start()
        yield running
    finally:
        halt.set()
        if server is not None:
            server.should_exit = True
        if worker is not None:
            running.worker.stop()
        if backend == "postgres":
            flush_namespace(namespace)
        reset_caches()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# The shop's endpoint for replies (see tests/fakes/shop.py).
CallbackServer = Shop
