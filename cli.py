"""The ``omnidesk`` command.

Every command says on stderr which database it uses. Only ``up`` and ``db upgrade`` may create
one: the others refuse a database that does not exist or has no schema, since on the embedded
default that means the command was run from another directory than the server (and would otherwise
make a new, empty database there). Every long-running command ends cleanly, with its in-process
workers and child processes, on SIGTERM and SIGINT.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from cli_startup import broker_label, fail, make_database, settings, setup_logging, show_logins, use_database

app = typer.Typer(help="omnidesk: omnichannel customer service for online shops.", no_args_is_help=True)
db_app = typer.Typer(help="Database.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
admin_app = typer.Typer(help="Administrators.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks (see bench/; they run from a source checkout).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(token_app, name="token")
app.add_typer(admin_app, name="admin")
app.add_typer(bench_app, name="bench")

CHECKOUT = Path(__file__).resolve().parent  # the source checkout, when omnidesk runs from one


def setup_broker() -> Any:
    import workers

    return workers.setup_broker(settings().redis_url)


def stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT ask for a clean stop (no traceback): ``stop`` is set and whoever waits
    on it shuts down. uvicorn takes the signals while it serves and hands them back here after.
    The handler runs in the main thread, which must then not be inside ``stop.wait()``: it would
    hold the lock ``stop.set()`` takes (``workers.run_forever`` checks in sleeps)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())


def end_children() -> None:
    """Stop what this process started besides its threads: the mail parsing pool."""
    from connectors.email import parallel

    parallel.shutdown()


def say_stopping() -> None:
    typer.echo("omnidesk is stopping...", err=True)


@app.command()
def up(
    host: str = "127.0.0.1",
    port: int = 8000,
    demo: Annotated[bool, typer.Option(help="add a demo shop: agents and an API channel")] = False,
) -> None:
    """Everything in one process: web, workers and scheduler (SQLite unless configured)."""
    import uvicorn

    import workers
    from store.settings import get_settings, secret_key

    stop = threading.Event()
    stop_on_signals(stop)
    shown_host = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    os.environ.setdefault("OMNIDESK_PUBLIC_URL", f"http://{shown_host}:{port}")
    get_settings.cache_clear()  # the public URL just set
    setup_logging()
    config = settings()
    secret_key(config)
    engine = make_database()
    show_logins(engine, demo=demo)
    if demo:
        os.environ["OMNIDESK_DEMO"] = "1"  # web.app serves the demo shop's endpoint
    broker = workers.setup_broker(config.redis_url)
    worker = workers.start_worker(broker)
    scheduler = threading.Thread(target=workers.Scheduler().run, args=(stop,), name="scheduler", daemon=True)
    scheduler.start()
    try:
        if not stop.is_set():
            typer.echo(f"broker: {broker_label(config)}", err=True)
            typer.echo(f"omnidesk is running at http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
            uvicorn.run("web.app:create_app", factory=True, host=host, port=port, log_level="warning")
    finally:
        say_stopping()
        stop.set()
        workers.stop_worker(worker)
        scheduler.join(timeout=10)
        end_children()


@app.command()
def web(host: str = "0.0.0.0", port: int = 8000, workers_: Annotated[int, typer.Option("--workers")] = 1) -> None:
    """The HTTP server (webhooks, API) alone."""
    import uvicorn

    setup_logging()
    config = settings()
    use_database(wait=True)
    setup_broker()
    typer.echo(f"broker: {broker_label(config)}", err=True)
    if not (config.broker_url or config.redis_url):
        typer.echo("warning: without OMNIDESK_BROKER_URL or OMNIDESK_REDIS_URL no worker process hears of new work "
                   "(only `omnidesk up` runs workers in-process)", err=True)
    stop_on_signals(threading.Event())
    processes = f", {workers_} processes" if workers_ > 1 else ""
    typer.echo(f"omnidesk web listening on http://{host}:{port}{processes}", err=True)
    try:
        uvicorn.run("cli:web_app", factory=True, host=host, port=port, workers=workers_, log_level="warning")
    finally:
        say_stopping()
        end_children()


def web_app() -> Any:
    """uvicorn's factory in a fresh process: set up the broker there too."""
    from web.app import create_app

    setup_broker()
    return create_app()


@app.command()
def worker(threads: Optional[int] = None) -> None:
    """A worker process: routes, delivers, polls. Run as many as you like."""
    import workers

    setup_logging()
    use_database(wait=True)
    broker = setup_broker()
    typer.echo(f"broker: {broker_label(settings())}", err=True)
    running = workers.start_worker(broker, threads)
    typer.echo("worker started", err=True)

    def stopping() -> None:
        say_stopping()
        workers.stop_worker(running)

    stop = threading.Event()
    stop_on_signals(stop)
    try:
        workers.run_forever(stop, on_stop=stopping)
    finally:
        end_children()


@app.command()
def scheduler() -> None:
    """The scheduler: sweeps the store and watches mailboxes. Run exactly one."""
    import workers

    setup_logging()
    use_database(wait=True)
    setup_broker()
    typer.echo(f"broker: {broker_label(settings())}", err=True)
    stop = threading.Event()
    stop_on_signals(stop)
    thread = threading.Thread(target=workers.Scheduler().run, args=(stop,), daemon=True)
    thread.start()
    typer.echo("scheduler started", err=True)
    try:
        workers.run_forever(stop)
        say_stopping()
        thread.join(timeout=10)
    finally:
        end_children()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the schema, or apply the migrations it lacks."""
    make_database()


@token_app.command("create")
def token_create(
    admin: Annotated[bool, typer.Option("--admin", help="a token of an admin")] = False,
    agent_id: Annotated[Optional[int], typer.Option("--agent", help="a token of this agent")] = None,
) -> None:
    """Print a new API token (and nothing else on stdout)."""
    from store import agents

    engine = use_database()
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

    engine = use_database()
    try:
        _, token = agents.create_agent(engine, name=name, email=email, role="admin", capacity=0)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(token)


# Every argument, --help too, goes to the benchmark's own parser.
PASS_THROUGH: dict[str, Any] = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def bench_module(name: str) -> Any:
    """A module of bench/, which is in the source checkout and not in the installed package."""
    import importlib

    if not (CHECKOUT / "bench" / "__init__.py").exists() or not (CHECKOUT / "tests" / "fakes").is_dir():
        fail("the benchmarks are not installed with omnidesk: they run from its source checkout. Clone the "
             "repository, run `scripts/test` once there (it makes .venv with the test extras), then "
             "`.venv/bin/omnidesk bench ...` or `.venv/bin/python -m bench.ingest` from it.")
    if str(CHECKOUT) not in sys.path:
        sys.path.insert(0, str(CHECKOUT))
    return importlib.import_module(f"bench.{name}")


@bench_app.command("ingest", context_settings=PASS_THROUGH)
def bench_ingest(ctx: typer.Context) -> None:
    """bench/ingest.py: signed inbound posts through the real server into PostgreSQL + Redis."""
    raise typer.Exit(bench_module("ingest").main(ctx.args))


@bench_app.command("email", context_settings=PASS_THROUGH)
def bench_email(ctx: typer.Context) -> None:
    """bench/email_ingest.py: a mailbox backlog imported from Dovecot into PostgreSQL."""
    raise typer.Exit(bench_module("email_ingest").main(ctx.args))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
