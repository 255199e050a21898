"""The command line as a newcomer uses it: ``omnidesk up --demo`` on the embedded default, in a
fresh directory, then ``token create``; a restart keeps the data and the secret key and shows the
demo logins again. Commands run elsewhere name the database they would use and refuse to make a
new one."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from connectors.api import sign
from tests.support import REDIS_URL, flush_namespace, free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]


def omnidesk_command() -> list[str]:
    script = shutil.which("omnidesk", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "cli"]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any OMNIDESK_ setting (the tests' own included), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIDESK_")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def run(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*omnidesk_command(), *args], cwd=cwd, capture_output=True, text=True,
                          env=clean_env(**env), timeout=120)


class Omnidesk:
    """An ``omnidesk`` command in its own session (and process group), its output collected line
    by line."""

    def __init__(self, cwd: Path, *args: str, env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([*omnidesk_command(), *args], cwd=cwd, env=env or clean_env(),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines: list[str] = []
        self.signalled_at = 0  # the output's length when it was signalled
        threading.Thread(target=self._read, daemon=True).start()

    @classmethod
    def up(cls, cwd: Path, *args: str) -> Omnidesk:
        port = free_port()
        return cls(cwd, "up", "--port", str(port), *args, port=port)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def stopped_cleanly(self) -> bool:
        """It said it was stopping and printed no traceback since it was signalled."""
        after = self.lines[self.signalled_at:]
        return any("omnidesk is stopping" in line for line in after) and not any("Traceback" in line for line in after)

    def wait_line(self, text: str, timeout: float = 60) -> str:
        wait_for(lambda: any(text in line for line in self.lines) or self.proc.poll() is not None,
                 timeout=timeout, what=f"{text!r} in the output")
        assert self.proc.poll() is None, self.output
        return next(line for line in self.lines if text in line)

    def wait_running(self) -> None:
        self.wait_line("omnidesk is running at")
        wait_for(lambda: healthy(self.url), timeout=30, what="/healthz")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """``sig`` to the command's own process only (as a supervisor sends it); its exit status."""
        if self.proc.poll() is None:
            self.signalled_at = len(self.lines)
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.kill_all()

    def kill_all(self) -> None:
        """Whatever is left of its process group, killed (the test has failed if anything was)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)


def healthy(url: str) -> bool:
    try:
        answer = httpx.get(url + "/healthz", timeout=2)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200 and answer.json()["status"] == "ok"


def demo_logins(lines: list[str]) -> tuple[dict[str, str], int, str]:
    tokens = {m.group(1): m.group(2) for line in lines
              if (m := re.search(r"demo agent .* <(\S+)> token: (\S+)$", line))}
    channel_id, secret = next((int(m.group(1)), m.group(2)) for line in lines
                              if (m := re.search(r"demo API channel (\d+): .* secret (\S+)$", line)))
    return tokens, channel_id, secret


def test_up_demo_runs_the_whole_loop_and_keeps_its_data(tmp_path: Path) -> None:
    up = Omnidesk.up(tmp_path, "--demo")
    try:
        up.wait_running()
        assert f"database: SQLite {tmp_path.resolve() / 'omnidesk.db'} (created the schema at revision" in up.output
        admin = next(m.group(1) for line in up.lines if (m := re.search(r"admin token.*: (\S+)$", line)))
        tokens, channel_id, secret = demo_logins(up.lines)
        assert sorted(tokens) == ["ana@demo.shop", "jan@demo.shop", "rita@demo.shop"]
        api = httpx.Client(base_url=up.url + "/api/v1", headers={"Authorization": f"Bearer {admin}"}, timeout=10)
        assert [c["name"] for c in api.get("/channels").json()["items"]] == ["Demo shop", "Demo shop chat"]
        shop = httpx.get(f"{up.url}/demo/shop")  # the demo shop's page with the chat widget
        assert shop.status_code == 200 and 'src="/widget.js"' in shop.text

        body = json.dumps({"message_id": "demo-1", "from": {"id": "cust-1", "name": "Jan"},
                           "text": "Dzień dobry, gdzie jest moja paczka?"}).encode()
        answer = httpx.post(f"{up.url}/webhooks/{channel_id}", content=body,
                            headers={"X-Omnidesk-Signature": sign(secret, body)})
        assert answer.status_code == 202, answer.text
        conv = wait_for(lambda: (items := api.get("/conversations").json()["items"]) and items[0]["assignee_id"]
                        and items[0], timeout=20, what="the demo conversation to be assigned")
        reply = api.post(f"/conversations/{conv['id']}/messages", json={"text": "Jutro u Pana."})
        assert reply.status_code == 202
        wait_for(lambda: api.get(f"/conversations/{conv['id']}").json()["messages"][-1]["status"] == "delivered",
                 timeout=20, what="the reply delivered to the demo shop")
    finally:
        assert up.stop() == 0, up.output
    assert up.stopped_cleanly(), up.output

    assert (tmp_path / "omnidesk.db").exists()
    assert (tmp_path / ".omnidesk" / "secret_key").stat().st_mode & 0o077 == 0  # readable by its owner only

    made = run(tmp_path, "token", "create", "--admin")
    assert made.returncode == 0, made.stderr
    token = made.stdout
    assert len(token.splitlines()) == 1 and len(token.strip()) >= 30
    assert f"database: SQLite {tmp_path.resolve() / 'omnidesk.db'}" in made.stderr

    again = Omnidesk.up(tmp_path, "--demo")
    try:
        again.wait_running()
        assert "the schema is already at revision" in again.output
        assert not any("admin token" in line for line in again.lines)  # a token only on the first start ...
        assert "omnidesk token create --admin" in again.output  # ... then how to get one
        # The demo logins again: new agent tokens that work, the same channel secret.
        new_tokens, same_channel, same_secret = demo_logins(again.lines)
        assert (same_channel, same_secret) == (channel_id, secret)
        assert sorted(new_tokens) == sorted(tokens) and set(new_tokens.values()).isdisjoint(tokens.values())
        as_ana = httpx.get(f"{again.url}/api/v1/conversations", timeout=10,
                           headers={"Authorization": f"Bearer {new_tokens['ana@demo.shop']}"})
        assert as_ana.status_code == 200, as_ana.text
        api = httpx.Client(base_url=again.url + "/api/v1", headers={"Authorization": f"Bearer {token.strip()}"})
        assert len(api.get("/conversations").json()["items"]) == 1
        # The channel secret still decrypts with the kept key: the webhook still verifies.
        body = json.dumps({"message_id": "demo-2", "from": {"id": "cust-1"}, "text": "Dziękuję!"}).encode()
        answer = httpx.post(f"{again.url}/webhooks/{channel_id}", content=body,
                            headers={"X-Omnidesk-Signature": sign(secret, body)})
        assert answer.status_code == 202, answer.text
    finally:
        assert again.stop(signal.SIGINT) == 0, again.output
    assert again.stopped_cleanly(), again.output


@pytest.mark.parametrize("command", [["token", "create", "--admin"], ["admin", "create", "boss@shop.example"],
                                     ["worker"], ["scheduler"], ["web", "--port", "9"]])
def test_a_command_run_elsewhere_refuses_to_make_a_new_database(tmp_path: Path, command: list[str]) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run(elsewhere, *command)
    assert done.returncode == 1 and done.stdout == ""
    expected = elsewhere.resolve() / "omnidesk.db"
    assert f"database: SQLite {expected}" in done.stderr
    assert f"there is no omnidesk database at {expected}" in done.stderr
    assert "OMNIDESK_DATABASE_URL" in done.stderr and "Traceback" not in done.stderr
    assert list(elsewhere.iterdir()) == []  # no database file, no secret key


def test_a_database_without_the_schema_is_refused_and_db_upgrade_says_what_it_did(tmp_path: Path) -> None:
    from alembic.script import ScriptDirectory

    from store.db import MIGRATIONS

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    (tmp_path / "omnidesk.db").write_bytes(b"")  # e.g. left by an earlier tool: a file, no schema
    refused = run(tmp_path, "token", "create", "--admin")
    assert refused.returncode == 1 and "has no omnidesk schema" in refused.stderr

    created = run(tmp_path, "db", "upgrade")
    assert created.returncode == 0, created.stderr
    assert f"(created the schema at revision {head})" in created.stderr
    again = run(tmp_path, "db", "upgrade")
    assert f"(the schema is already at revision {head})" in again.stderr

    # Run from elsewhere with the database named: used, not made anew.
    url = f"sqlite:///{tmp_path / 'omnidesk.db'}"
    other = tmp_path / "other"
    other.mkdir()
    token = run(other, "token", "create", "--admin", OMNIDESK_DATABASE_URL=url)
    assert token.returncode == 0 and token.stdout.startswith("od_"), token.stderr
    assert list(other.iterdir()) == []


def test_an_old_schema_is_upgraded_from_its_revision(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine

    from store.db import MIGRATIONS

    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    older = script.get_revision(head).down_revision
    assert isinstance(older, str)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine = create_engine(f"sqlite:///{tmp_path / 'omnidesk.db'}")
    command.upgrade(config, older)
    engine.dispose()

    refused = run(tmp_path, "worker")
    assert refused.returncode == 1
    assert f"is at revision {older}, this omnidesk needs {head}" in refused.stderr
    upgraded = run(tmp_path, "db", "upgrade")
    assert f"(upgraded the schema from revision {older} to {head})" in upgraded.stderr, upgraded.stderr


def test_postgresql_is_named_by_host_and_database_never_with_its_password(pg_url: str, tmp_path: Path) -> None:
    host_and_db = pg_url.split("@", 1)[1]
    with_password = pg_url.replace("://postgres@", "://postgres:s3cr3t-pw@")  # trust auth: the password is unused
    done = run(tmp_path, "token", "create", "--admin", OMNIDESK_DATABASE_URL=with_password)
    assert done.returncode == 0, done.stderr
    assert f"database: PostgreSQL {host_and_db}" in done.stderr
    assert "s3cr3t-pw" not in done.stderr + done.stdout

    missing = run(tmp_path, "worker", OMNIDESK_DATABASE_URL=with_password.rsplit("/", 1)[0] + "/no_such_db")
    assert missing.returncode == 1 and "no_such_db" in missing.stderr and "Traceback" not in missing.stderr
    assert "waiting for the database" not in missing.stderr  # a wrong name is not waited for
    stranger = run(tmp_path, "worker", OMNIDESK_DATABASE_URL=pg_url.replace("://postgres@", "://no_such_role@"))
    assert stranger.returncode == 1 and "no_such_role" in stranger.stderr
    assert "waiting for the database" not in stranger.stderr  # nor a login the server refuses
    assert "s3cr3t-pw" not in missing.stderr


@contextlib.contextmanager
def forwarding(port: int, to: tuple[str, int]) -> Iterator[None]:
    """A TCP port on loopback that passes each connection on to ``to`` (the database appearing)."""

    class Pass(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with socket.create_connection(to) as upstream:
                def pump(source: socket.socket, sink: socket.socket) -> None:
                    with contextlib.suppress(OSError):
                        while data := source.recv(65536):
                            sink.sendall(data)
                    with contextlib.suppress(OSError):
                        sink.shutdown(socket.SHUT_WR)

                back = threading.Thread(target=pump, args=(upstream, self.request), daemon=True)
                back.start()
                pump(self.request, upstream)
                back.join()

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    with socketserver.ThreadingTCPServer(("127.0.0.1", port), Pass) as server:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield
        finally:
            server.shutdown()


def test_a_serving_process_waits_for_a_database_still_starting_and_gives_up_with_a_message(
    pg_url: str, tmp_path: Path
) -> None:
    port = free_port()
    database = urlsplit(pg_url)
    url = pg_url.replace(database.netloc, f"postgres@127.0.0.1:{port}")  # nothing listens there yet
    namespace = f"omnidesk-test-wait-{port}"
    env = clean_env(OMNIDESK_DATABASE_URL=url, OMNIDESK_REDIS_URL=REDIS_URL, OMNIDESK_REDIS_NAMESPACE=namespace)
    worker = Omnidesk(tmp_path, "worker", "--threads", "1", env=env)
    try:
        worker.wait_line("waiting for the database")
        time.sleep(1.5)  # a few tries refused
        assert worker.proc.poll() is None and "worker started" not in worker.output
        with forwarding(port, (database.hostname or "127.0.0.1", database.port or 5432)):
            worker.wait_line("worker started", timeout=30)
            assert worker.stop() == 0 and worker.stopped_cleanly(), worker.output
    finally:
        worker.kill_all()
        flush_namespace(namespace)
    assert "Traceback" not in worker.output

    started = time.monotonic()
    given_up = run(tmp_path, "scheduler", OMNIDESK_DATABASE_URL=url, OMNIDESK_DATABASE_WAIT="2")
    assert given_up.returncode == 1 and time.monotonic() - started >= 2
    assert f"cannot use the database PostgreSQL 127.0.0.1:{port}" in given_up.stderr
    assert "Traceback" not in given_up.stderr


def test_a_wrong_setting_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    done = run(tmp_path, "db", "upgrade", OMNIDESK_LOG_LEVEL="chatty")
    assert done.returncode == 1
    assert "OMNIDESK_LOG_LEVEL" in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []
