"""The engine, sessions and migrations, for SQLite and PostgreSQL alike."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session

from store.settings import get_settings

MIGRATIONS = Path(__file__).with_name("migrations")


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@functools.cache
def get_engine(url: str | None = None) -> Engine:
    url = normalise_url(url or get_settings().database_url)
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    # No pre-ping (a round trip per transaction on the hot path): connections are recycled
    # instead, and a connection that broke fails its job, which is retried. No overflow: a pool
    # that opens and closes connections under load costs PostgreSQL a backend each time; 20 a
    # process keeps four processes within PostgreSQL's default 100 connections.
    # hide_parameters: an error's message and log never carry the statement's parameters (customer
    # text, tokens).
    return create_engine(url, pool_size=20, max_overflow=0, pool_recycle=900, pool_use_lifo=True,
                         hide_parameters=True)


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        # Take the write lock up front: a deferred transaction that later writes can fail with
        # "database is locked" instead of waiting, when threads share the file.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on error."""
    with Session(engine or get_engine(), expire_on_commit=False) as session, session.begin():
        yield session


def upgrade(url: str | None = None) -> None:
    """Apply every migration (``omnidesk db upgrade``)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = get_engine(url)
    command.upgrade(config, "head")


def schema_revision(url: str | None = None) -> str | None:
    """The migration the database is at; None when it has no schema yet. Never creates a SQLite
    file (connecting would): a missing one is a database without a schema."""
    from alembic.runtime.migration import MigrationContext

    url = normalise_url(url or get_settings().database_url)
    parsed = make_url(url)
    on_disk = parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
    if on_disk and not Path(str(parsed.database)).expanduser().exists():
        return None
    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
