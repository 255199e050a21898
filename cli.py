"""The ``omnidesk`` command."""

from __future__ import annotations

import logging
import os
import threading
from typing import Annotated, Optional

import typer

app = typer.Typer(help="omnidesk: omnichannel customer service for online shops.", no_args_is_help=True)
db_app = typer.Typer(help="Database.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
admin_app = typer.Typer(help="Administrators.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks (see bench/).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(token_app, name="token")
app.add_typer(admin_app, name="admin")
app.add_typer(bench_app, name="bench")


def _logging() -> None:
    logging.basicConfig(
        level=os.environ.get("OMNIDESK_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _broker():  # type: ignore[no-untyped-def]
    import workers
    from store.settings import get_settings

    return workers.setup_broker(get_settings().redis_url)


@app.command()
def up(
    host: str = "127.0.0.1",
    port: int = 8000,
    demo: Annotated[bool, typer.Option(help="add a demo shop: agents and an API channel")] = False,
) -> None:
    """Everything in one process: web, workers and scheduler (SQLite unless configured)."""
    import uvicorn

    import workers
    from store import agents
    from store.db import get_engine, upgrade
    from store.settings import get_settings, secret_key

    shown_host = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    os.environ.setdefault("OMNIDESK_PUBLIC_URL", f"http://{shown_host}:{port}")
    _logging()
    settings = get_settings()
    secret_key(settings)
    upgrade()
    engine = get_engine()
    first = _no_agents(engine)
    if first:
        token = agents.admin_token(engine)
        typer.echo(f"admin token (shown once, keep it): {token}")
    if demo:
        from store.demo import add_demo

        add_demo(engine, typer.echo)
    broker = workers.setup_broker(settings.redis_url)
    worker = workers.start_worker(broker)
    stop = threading.Event()
    scheduler = threading.Thread(target=workers.Scheduler().run, args=(stop,), name="scheduler", daemon=True)
    scheduler.start()
    typer.echo(f"omnidesk is running at http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    try:
        uvicorn.run("web.app:create_app", factory=True, host=host, port=port, log_level="warning")
    finally:
        stop.set()
        worker.stop()


def _no_agents(engine) -> bool:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from store.sql import agents

    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(agents)).scalar_one() == 0


@app.command()
def web(host: str = "0.0.0.0", port: int = 8000, workers_: Annotated[int, typer.Option("--workers")] = 1) -> None:
    """The HTTP server (webhooks, API) alone."""
    import uvicorn

    _logging()
    _broker()
    uvicorn.run("cli:_web_app", factory=True, host=host, port=port, workers=workers_, log_level="warning")


def _web_app():  # type: ignore[no-untyped-def]
    """uvicorn's factory in a fresh process: set up the broker there too."""
    from web.app import create_app

    _broker()
    return create_app()


@app.command()
def worker(threads: Optional[int] = None) -> None:
    """A worker process: routes, delivers, polls. Run as many as you like."""
    import workers

    _logging()
    broker = _broker()
    running = workers.start_worker(broker, threads)
    typer.echo("worker started", err=True)
    workers.run_forever(threading.Event(), on_stop=running.stop)


@app.command()
def scheduler() -> None:
    """The scheduler: sweeps the store and watches mailboxes. Run exactly one."""
    import workers

    _logging()
    _broker()
    stop = threading.Event()
    thread = threading.Thread(target=workers.Scheduler().run, args=(stop,), daemon=True)
    thread.start()
    typer.echo("scheduler started", err=True)
    workers.run_forever(stop)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the migrations."""
    from store.db import upgrade

    upgrade()
    typer.echo("database is up to date", err=True)


@token_app.command("create")
def token_create(
    admin: Annotated[bool, typer.Option("--admin", help="a token of an admin")] = False,
    agent_id: Annotated[Optional[int], typer.Option("--agent", help="a token of this agent")] = None,
) -> None:
    """Print a new API token (and nothing else on stdout)."""
    from store import agents
    from store.db import get_engine, upgrade

    upgrade()
    engine = get_engine()
    if admin or agent_id is None:
        typer.echo(agents.admin_token(engine))
        return
    with engine.begin() as conn:
        if agents.get(conn, agent_id) is None:
            raise typer.BadParameter(f"no agent {agent_id}")
        typer.echo(agents.new_token(conn, agent_id))


@admin_app.command("create")
def admin_create(email: str, name: str = "Administrator") -> None:
    """Create an admin agent and print their token."""
    from store import agents
    from store.db import get_engine, upgrade

    upgrade()
    try:
        _, token = agents.create_agent(get_engine(), name=name, email=email, role="admin", capacity=0)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(token)


@bench_app.command("ingest", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench_ingest(ctx: typer.Context) -> None:
    """bench/ingest.py: signed inbound posts through the real server into PostgreSQL + Redis."""
    from bench import ingest

    raise typer.Exit(ingest.main(ctx.args))


@bench_app.command("email", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench_email(ctx: typer.Context) -> None:
    """bench/email_ingest.py: a mailbox backlog imported from Dovecot into PostgreSQL."""
    from bench import email_ingest

    raise typer.Exit(email_ingest.main(ctx.args))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
