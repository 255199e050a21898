"""Every process omnidesk starts ends with it. A poller that imports a backlog of mail parses it in a
process pool (``connectors.email.parallel``: a forkserver, its workers and multiprocessing's resource
tracker); stopping ``omnidesk up`` or ``omnidesk worker`` with SIGTERM or SIGINT, sent to that one
process as a supervisor sends it, must leave none of them behind. Each command runs in a session of
its own, and /proc tells which processes are still in it."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from tests import support
from tests.fakes.dovecot_server import Dovecot
from tests.fakes.smtp import SmtpSink
from tests.support import free_port, wait_for
from tests.test_cli import Omnidesk, clean_env, healthy, run

SHOP = "support@shop.example"
BACKLOG = 60  # more than connectors.email.parallel.MIN_POOLED in one batch: parsed in the pool
SIGNALS = pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
# Ctrl-C in a terminal signals the whole foreground process group, the pool's processes included.
CTRL_C = -signal.SIGINT


def in_session(sid: int) -> list[str]:
    """The live processes of session ``sid`` (pid and command line), read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended meanwhile
            continue
        state, _ppid, _pgrp, session = stat.rsplit(")", 1)[1].split()[:4]
        if int(session) == sid and state != "Z":
            found.append(f"{entry.name} {cmdline.strip()}")
    return found


def pool_started(process: Omnidesk) -> bool:
    return any("multiprocessing.forkserver" in line for line in in_session(process.proc.pid))


def backlog(dovecot: Dovecot) -> str:
    """A mailbox holding BACKLOG customer mails; its user."""
    user, _ = dovecot.add_user()
    mails = []
    for n in range(BACKLOG):
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = f"Customer {n} <c{n}@example.org>", SHOP, f"Order {n}"
        mail["Message-ID"] = f"<{n}.{secrets.token_hex(4)}@example.org>"
        mail.set_content(f"Where is my order {n}?")
        mails.append(mail.as_bytes())
    assert dovecot.append_many(user, mails) == BACKLOG
    return user


def assert_ends_alone(process: Omnidesk, sig: int) -> None:
    assert pool_started(process), in_session(process.proc.pid)
    status = stop_alone(process, sig)
    assert status == 0, process.output
    assert process.stopped_cleanly(), process.output


def stop_alone(process: Omnidesk, sig: int) -> int:
    """``sig`` to the process alone (``CTRL_C``: SIGINT to its process group); its status once it has
    ended, after checking that nothing of its session outlived it (what is left is then killed, for
    the next tests)."""
    process.signalled_at = len(process.lines)
    if sig == CTRL_C:
        os.killpg(process.proc.pid, signal.SIGINT)
    else:
        process.proc.send_signal(sig)
    try:
        try:
            status = process.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # stuck: where is each of its threads? (see setup_logging)
            process.proc.send_signal(signal.SIGUSR1)
            time.sleep(2)
            raise AssertionError("still running 60 s after the signal; since then it said:\n"
                                 + "\n".join(process.lines[process.signalled_at:])) from None
        left = in_session(process.proc.pid)
        assert left == [], "left behind:\n" + "\n".join(left)
        return status
    finally:
        process.kill_all()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, CTRL_C], ids=["SIGTERM", "SIGINT", "Ctrl-C"])
def test_up_ends_its_mail_parsing_processes(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink, sig: int) -> None:
    up = Omnidesk.up(tmp_path)
    try:
        up.wait_running()
        admin = up.wait_line("admin token").rsplit(" ", 1)[1]
        api = httpx.Client(base_url=up.url + "/api/v1", headers={"Authorization": f"Bearer {admin}"}, timeout=30)
        user = backlog(dovecot)
        made = api.post("/channels", json={"kind": "email", "name": "Support", "config": {
            "address": SHOP, **dovecot.imap_settings(user), **smtp_sink.settings()}})
        assert made.status_code == 201, made.text
        wait_for(lambda: pool_started(up), timeout=60, what="the poller's parsing pool")
        wait_for(lambda: api.get("/conversations").json()["items"], timeout=60, what="the backlog stored")
    except BaseException:
        up.kill_all()
        raise
    assert_ends_alone(up, sig)


@SIGNALS
def test_worker_and_scheduler_end_with_their_children(pg_url: str, tmp_path: Path, dovecot: Dovecot,
                                                      smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch,
                                                      sig: int) -> None:
    support.check_redis()
    from store.channels import create_channel
    from store.db import get_engine

    settings = {"OMNIDESK_DATABASE_URL": pg_url, "OMNIDESK_REDIS_URL": support.REDIS_URL,
                "OMNIDESK_REDIS_NAMESPACE": f"omnidesk-test-{secrets.token_hex(4)}",
                "OMNIDESK_SECRET_KEY": secrets.token_urlsafe(32), "OMNIDESK_SWEEP_INTERVAL": "1"}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    support.reset_caches()
    user = backlog(dovecot)
    create_channel(get_engine(), "email", "Support", {"address": SHOP, **dovecot.imap_settings(user),
                                                       **smtp_sink.settings()})
    scheduler = Omnidesk(tmp_path, "scheduler", env=clean_env(**settings))
    worker = Omnidesk(tmp_path, "worker", env=clean_env(**settings))
    try:
        worker.wait_line("worker started")
        scheduler.wait_line("scheduler started")
        wait_for(lambda: pool_started(worker), timeout=60, what="the worker's parsing pool")
    except BaseException:
        worker.kill_all()
        scheduler.kill_all()
        raise
    try:
        assert_ends_alone(worker, sig)
    finally:
        assert stop_alone(scheduler, sig) == 0, scheduler.output
        support.flush_namespace(settings["OMNIDESK_REDIS_NAMESPACE"])
    assert scheduler.stopped_cleanly(), scheduler.output


# The worker's and the scheduler's main thread, as cli runs it, given a signal that another of its
# threads takes. Python runs the handler in the main thread only; the kernel may hand a signal sent
# to the process to any thread that does not block it (a worker outlived its SIGINT so in CI).
SIGNAL_TAKEN_ELSEWHERE = """
import signal, threading
import cli, workers
stop = threading.Event()
cli.stop_on_signals(stop)
threading.Timer(0.5, lambda: signal.pthread_kill(threading.get_ident(), signal.{sig})).start()
workers.run_forever(stop, on_stop=lambda: print("stopped", flush=True))
"""


@SIGNALS
def test_a_signal_another_thread_takes_still_ends_the_main_threads_wait(tmp_path: Path, sig: int) -> None:
    code = SIGNAL_TAKEN_ELSEWHERE.format(sig=signal.Signals(sig).name)
    ran = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=clean_env(), capture_output=True,
                         text=True, timeout=30)
    assert (ran.returncode, ran.stdout) == (0, "stopped\n"), ran.stderr


def test_web_says_where_it_listens_and_ends_on_sigterm(tmp_path: Path) -> None:
    assert run(tmp_path, "db", "upgrade").returncode == 0
    port = free_port()
    web = Omnidesk(tmp_path, "web", "--host", "127.0.0.1", "--port", str(port), port=port)
    try:
        web.wait_line(f"omnidesk web listening on http://127.0.0.1:{port}")
        wait_for(lambda: healthy(web.url), timeout=30, what="/healthz")
        assert f"database: SQLite {tmp_path.resolve() / 'omnidesk.db'}" in web.output
        assert "broker: in-process" in web.output and "OMNIDESK_REDIS_URL" in web.output
    except BaseException:
        web.kill_all()
        raise
    assert stop_alone(web, signal.SIGTERM) == 0, web.output
    assert web.stopped_cleanly(), web.output
