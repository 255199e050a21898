from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from tests import support


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated PostgreSQL database that each test copies (CREATE DATABASE ... TEMPLATE)."""
    from store.db import upgrade

    name = f"omnidesk_tpl_{os.getpid()}_{secrets.token_hex(3)}"
    url = support.create_database(name)
    os.environ.setdefault("OMNIDESK_SECRET_KEY", "test-secret-key")
    try:
        upgrade(url)
        from store.db import get_engine

        get_engine(url).dispose()
        get_engine.cache_clear()
        yield name
    finally:
        support.drop_database(name)


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    name = f"omnidesk_test_{os.getpid()}_{secrets.token_hex(4)}"
    url = support.create_database(name, template=pg_template)
    try:
        yield url
    finally:
        support.reset_caches()
        support.drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    return f"sqlite:///{tmp_path}/omnidesk.db"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Run a test on the embedded default (SQLite, in-process broker) and on PostgreSQL + Redis."""
    if request.param == "postgres":
        support.check_redis()
    return request.param


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str:
    if backend == "postgres":
        return request.getfixturevalue("pg_url")
    return request.getfixturevalue("sqlite_url")


@pytest.fixture
def omnidesk(backend: str, database_url: str, tmp_path, request: pytest.FixtureRequest) -> Iterator[support.Running]:  # type: ignore[no-untyped-def]
    """omnidesk running in this process; ``@pytest.mark.no_scheduler`` leaves out the sweep."""
    scheduler = request.node.get_closest_marker("no_scheduler") is None
    with support.running_omnidesk(backend, database_url, tmp_path, scheduler=scheduler) as running:
        yield running


@pytest.fixture
def callback() -> Iterator[support.CallbackServer]:
    server = support.CallbackServer()
    yield server
    server.close()


@pytest.fixture
def pg_engine(pg_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The store on a fresh PostgreSQL database, without web or workers."""
    monkeypatch.setenv("OMNIDESK_DATABASE_URL", pg_url)
    monkeypatch.setenv("OMNIDESK_SECRET_KEY", "test-secret-key")
    support.reset_caches()
    from store.db import get_engine

    yield get_engine()
    support.reset_caches()


@pytest.fixture
def store_engine(database_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The store alone on both databases (parametrized by ``backend``)."""
    monkeypatch.setenv("OMNIDESK_DATABASE_URL", database_url)
    monkeypatch.setenv("OMNIDESK_SECRET_KEY", "test-secret-key")
    support.reset_caches()
    from store.db import get_engine, upgrade

    upgrade()
    yield get_engine()
    support.reset_caches()


@pytest.fixture(scope="session")
def dovecot_server():  # type: ignore[no-untyped-def]
    """One Dovecot for the session; each test takes a mailbox of its own (``mailbox`` fixture)."""
    from tests.fakes.dovecot import start_dovecot

    server = start_dovecot()
    yield server
    server.close()


@pytest.fixture
def dovecot(dovecot_server):  # type: ignore[no-untyped-def]
    """The session's Dovecot, running (a test may have stopped it)."""
    if dovecot_server._pid() is None:
        dovecot_server.start()
    yield dovecot_server
    if dovecot_server._pid() is None:
        dovecot_server.start()


@pytest.fixture
def smtp_sink():  # type: ignore[no-untyped-def]
    from tests.fakes.smtp import SmtpSink

    sink = SmtpSink()
    yield sink
    sink.stop()
