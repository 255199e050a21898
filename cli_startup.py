"""What the ``omnidesk`` commands do before they serve: the settings read (a wrong one is a message),
the database named and checked or created, the broker named, the first logins shown."""

from __future__ import annotations

import faulthandler
import logging
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from store.settings import Settings


def fail(message: str) -> NoReturn:
    typer.echo(f"omnidesk: {message}", err=True)
    raise typer.Exit(1)


def settings() -> Settings:
    """The settings, or a readable message (not a traceback) when one of them is wrong."""
    from pydantic import ValidationError

    from store.settings import get_settings

    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(f"OMNIDESK_{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        fail(f"invalid setting: {problems}")


def setup_logging() -> None:
    """Logs to stderr; and ``kill -USR1 <pid>`` writes where each of the process's threads is
    there, for a process that seems stuck (it goes on running)."""
    logging.basicConfig(level=settings().log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    faulthandler.register(signal.SIGUSR1, all_threads=True)


def use_database(*, wait: bool = False) -> Engine:
    """The database this command uses, said on stderr; refused (with how to name the right one)
    unless it exists with the schema this omnidesk needs: a command run from another directory must
    not quietly make a new, empty database there. ``wait``: a process about to serve waits up to
    ``OMNIDESK_DATABASE_WAIT`` for a database it cannot reach yet (see ``checked``)."""
    from store.db import get_engine

    config = settings()
    label = config.database_label()
    revision = checked(label, lambda: None, wait=config.database_wait if wait else 0.0)
    typer.echo(f"database: {label}", err=True)
    head = migrations().get_current_head()
    if revision is None:
        path = config.sqlite_path()
        what = (f"there is no omnidesk database at {path}" if path is not None and not path.exists()
                else f"the database {label} has no omnidesk schema")
        fail(f"{what}.\nRun this command from the directory where you run `omnidesk up`, or set "
             "OMNIDESK_DATABASE_URL to the database to use (e.g. sqlite:////absolute/path/omnidesk.db); "
             "`omnidesk db upgrade` creates a new one here.")
    if revision != head and not known_revision(revision):
        fail(f"the database {label} is at revision {revision}, which this omnidesk does not know: "
             f"a newer omnidesk has migrated it (this one needs {head}).")
    if revision != head:
        fail(f"the database {label} is at revision {revision}, this omnidesk needs {head}: "
             "run `omnidesk db upgrade` first.")
    return get_engine()


def make_database() -> Engine:
    """The database, created or upgraded (``up``, ``db upgrade``); says which, and what was done."""
    from store.db import get_engine, upgrade

    label = settings().database_label()
    before = checked(label, lambda: None)
    after = checked(label, upgrade)
    if before is None:
        done = f"created the schema at revision {after}"
    elif before != after:
        done = f"upgraded the schema from revision {before} to {after}"
    else:
        done = f"the schema is already at revision {after}"
    typer.echo(f"database: {label} ({done})", err=True)
    return get_engine()


def checked(label: str, step: Callable[[], None], *, wait: float = 0.0) -> str | None:
    """``step``, then the database's schema revision; a message, not a traceback, when the
    database cannot be reached or is at a revision this omnidesk does not know.

    ``wait``: seconds to keep trying while the failure is one that passes (the server refuses
    connections or cuts them: starting, restarting, an admin ending sessions), as when a compose
    file starts the workers beside the database. A wrong name or password fails at once."""
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from store.db import get_engine, schema_revision

    deadline, said = time.monotonic() + wait, False
    while True:
        try:
            step()
            return schema_revision()
        except (SQLAlchemyError, CommandError) as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            if not (passing(exc) and time.monotonic() < deadline):
                fail(f"cannot use the database {label}: {reason}")
            if not said:
                typer.echo(f"omnidesk: waiting for the database {label} ({reason})", err=True)
                said = True
            get_engine().dispose()  # the pool's connections went with it
            time.sleep(1.0)


def passing(exc: BaseException) -> bool:
    """A database failure that passes by itself: a refused, failed or cut connection (the server
    starting, restarting, an admin ending sessions). Not a database or role that does not exist, or
    a login the server refuses. (psycopg gives no SQLSTATE for a connection that failed to open:
    libpq's message says which.)"""
    from sqlalchemy.exc import DBAPIError, OperationalError

    if not isinstance(exc, DBAPIError):
        return False
    state = getattr(exc.orig, "sqlstate", None)
    if state:
        return state[:2] in ("08", "57")  # connection exception, operator intervention
    return isinstance(exc, OperationalError) and not any(
        refusal in str(exc.orig) for refusal in ("does not exist", "authentication failed", "no pg_hba.conf entry"))


def migrations() -> Any:
    from alembic.script import ScriptDirectory

    from store.db import MIGRATIONS

    return ScriptDirectory(str(MIGRATIONS))


def known_revision(revision: str) -> bool:
    from alembic.util import CommandError

    try:
        return migrations().get_revision(revision) is not None
    except CommandError:
        return False


def broker_label(config: Settings) -> str:
    import brokers

    return brokers.describe(brokers.configured_url(config.broker_url, config.redis_url),
                            namespace=config.redis_namespace, queue_prefix=config.broker_queue_prefix)


def show_logins(engine: Engine, *, demo: bool) -> None:
    """The admin token on the first start (how to get one after); with ``demo`` the demo shop's
    logins on every start (fresh agent tokens: only their hashes are kept; the inbox passwords)."""
    from store import agents

    if no_agents(engine):
        typer.echo(f"admin token (shown once, keep it): {agents.admin_token(engine)}")
    else:
        typer.echo("for an admin API token, run `omnidesk token create --admin` in this directory "
                   "(or with the same OMNIDESK_DATABASE_URL)")
    if demo:
        from store.demo import add_demo, admin_login

        said: list[str] = []

        def say(line: str) -> None:
            said.append(line)
            typer.echo(line)

        add_demo(engine, say)
        if not said:  # the demo shop was made on an earlier start
            for line in demo_logins(engine):
                typer.echo(line)
        admin = admin_login(engine)
        if admin is not None:
            typer.echo(admin)


def demo_logins(engine: Engine) -> list[str]:
    """The lines ``add_demo`` printed when it made the shop: new tokens for its agents, and its
    channel's secret, decrypted with the kept key; then the agents' inbox logins (email and
    password, see ``store.demo``)."""
    from sqlalchemy import select

    from store import agents
    from store.channels import full_config
    from store.demo import DEMO_AGENTS, demo_shop_line, login_line, restore_password
    from store.sql import agents as agent_table
    from store.sql import channels

    lines = []
    with engine.begin() as conn:
        for name, email, _ in DEMO_AGENTS:
            agent_id = conn.execute(select(agent_table.c.id).where(agent_table.c.email == email)).scalar()
            if agent_id is not None:
                lines.append(f"demo agent {name} <{email}> token: {agents.new_token(conn, agent_id)}")
        channel = conn.execute(select(channels).where(channels.c.name == "Demo shop").order_by(channels.c.id)).first()
    for _, email, _ in DEMO_AGENTS:
        password = restore_password(engine, email)
        if password is not None:
            lines.append(login_line(email, password))
    if channel is not None:
        secret = full_config(channel).secret.get_secret_value()  # type: ignore[attr-defined]
        lines.append(f"demo API channel {channel.id}: POST /webhooks/{channel.id} signed with secret {secret}")
    lines.append(demo_shop_line())
    return lines


def no_agents(engine: Engine) -> bool:
    from sqlalchemy import func, select

    from store.sql import agents

    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(agents)).scalar_one() == 0
