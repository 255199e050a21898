"""omnidesk as deployed: ``web``, ``scheduler`` and ``worker`` as separate processes, started with
the command lines of docker-compose.yml, on PostgreSQL and a real broker (Redis or RabbitMQ).

    with Deployment(pg_url, tmp_path) as desk:          # migrated, an admin token, all running
        desk.api.post("/api/v1/agents", ...)
        desk.kill_worker(); desk.start_worker()           # SIGKILL, as a crashed host would
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from store.settings import Settings
from tests import support

ROOT = Path(__file__).resolve().parent.parent
START_WAIT = 120.0  # seconds for the processes to start and say so


def compose_command(service: str, port: int) -> list[str]:
    """The command docker-compose.yml runs for ``service`` (without ``omnidesk``), on loopback and
    ``port``: the deployment's own process lines are what the tests start."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    settings = set(Settings.model_fields)
    for key in compose["services"][service].get("environment", {}):
        assert key.removeprefix("OMNIDESK_").lower() in settings, f"{service}: unknown setting {key}"
    command = compose["services"][service]["command"]
    assert command[0] == "omnidesk"
    return [{"0.0.0.0": "127.0.0.1", "8000": str(port)}.get(arg, arg) for arg in command[1:]]


class Deployment:
    """``broker``: ``{"OMNIDESK_REDIS_URL": ...}`` or ``{"OMNIDESK_BROKER_URL": ...}`` and its
    settings; Redis in a namespace of its own by default."""

    def __init__(self, database_url: str, directory: Path, *, broker: dict[str, str] | None = None,
                 worker_threads: int = 2, **settings: str) -> None:
        self.port = support.free_port()
        self.namespace = f"omnidesk-test-{os.getpid()}-{self.port}"
        self.env = {**os.environ, "OMNIDESK_DATABASE_URL": database_url, "OMNIDESK_SECRET_KEY": "k" * 32,
                    "OMNIDESK_PUBLIC_URL": f"http://127.0.0.1:{self.port}", "OMNIDESK_SWEEP_INTERVAL": "0.5",
                    "OMNIDESK_SWEEP_GRACE": "1", **settings}
        if broker is None:
            support.check_redis()
            broker = {"OMNIDESK_REDIS_URL": support.REDIS_URL, "OMNIDESK_REDIS_NAMESPACE": self.namespace}
        self.env.update(broker)
        self.log = directory / "processes.log"
        self.worker_threads = worker_threads
        self.processes: list[subprocess.Popen[bytes]] = []
        self.worker: subprocess.Popen[bytes] | None = None
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def __enter__(self) -> Deployment:
        self.run(*compose_command("migrate", self.port))
        token = self.run("token", "create", "--admin").strip()
        assert token.startswith("od_") and "\n" not in token
        self.api.headers["Authorization"] = f"Bearer {token}"
        try:
            self.processes += [self.spawn(compose_command("web", self.port)),
                               self.spawn(compose_command("scheduler", self.port))]
            self.start_worker()
            # Starting takes a few seconds; a loaded CI machine once took over 30 s for three
            # deployments in a row (each then failed every test of its module).
            support.wait_for(self.healthy, timeout=START_WAIT, interval=0.2, what="omnidesk web")
            # A test starts on a deployment whose processes have all started, not while the worker
            # and scheduler still import and connect beside its first requests.
            support.wait_for(self.started, timeout=START_WAIT, interval=0.2, what="the worker and the scheduler")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def run(self, *args: str) -> str:
        return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, env=self.env, check=True,
                              capture_output=True, text=True).stdout

    def spawn(self, args: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=ROOT, env=self.env,
                                stdout=self.log.open("ab"), stderr=subprocess.STDOUT)

    def start_worker(self) -> None:
        self.worker = self.spawn([*compose_command("worker", self.port), "--threads", str(self.worker_threads)])
        self.processes.append(self.worker)

    def kill_worker(self) -> None:
        """SIGKILL: no shutdown, no acknowledgement of the jobs it held."""
        assert self.worker is not None
        self.worker.send_signal(signal.SIGKILL)
        self.worker.wait()

    def healthy(self) -> bool:
        try:
            return self.api.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def started(self) -> bool:
        said = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "worker started" in said and "scheduler started" in said

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        answer = self.api.request(method, "/api/v1" + path, **kw)
        assert answer.is_success, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None

    def close(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if "OMNIDESK_REDIS_NAMESPACE" in self.env:
            support.flush_namespace(self.namespace)
        if os.environ.get("OMNIDESK_TEST_SHOW_LOGS") and self.log.exists():
            print(self.log.read_text())
