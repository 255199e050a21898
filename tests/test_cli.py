"""The command line as a newcomer uses it: ``omnidesk up --demo`` on the embedded default, in a
fresh directory, then ``token create``; a restart keeps the data and the secret key."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from connectors.api import sign
from tests.support import free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]


def _omnidesk() -> list[str]:
    script = shutil.which("omnidesk", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "cli"]


class _Up:
    """``omnidesk up`` in its own process group, its output collected line by line."""

    def __init__(self, cwd: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIDESK_")}
        env["PYTHONPATH"] = str(ROOT)
        self.port = free_port()
        self.proc = subprocess.Popen([*_omnidesk(), "up", "--port", str(self.port), *args], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_running(self) -> None:
        wait_for(lambda: any("omnidesk is running at" in line for line in self.lines) or self.proc.poll() is not None,
                 timeout=60, what="omnidesk up to start")
        assert self.proc.poll() is None, "\n".join(self.lines)
        wait_for(lambda: _healthy(self.url), timeout=30, what="/healthz")

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise


def _healthy(url: str) -> bool:
    try:
        answer = httpx.get(url + "/healthz", timeout=2)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200 and answer.json()["status"] == "ok"


def test_up_demo_runs_the_whole_loop_and_keeps_its_data(tmp_path: Path) -> None:
    up = _Up(tmp_path, "--demo")
    try:
        up.wait_running()
        admin = next(m.group(1) for line in up.lines if (m := re.search(r"admin token.*: (\S+)$", line)))
        channel_id, secret = next((int(m.group(1)), m.group(2)) for line in up.lines
                                  if (m := re.search(r"demo API channel (\d+): .* secret (\S+)$", line)))
        api = httpx.Client(base_url=up.url + "/api/v1", headers={"Authorization": f"Bearer {admin}"}, timeout=10)
        assert [c["name"] for c in api.get("/channels").json()["items"]] == ["Demo shop"]

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
        assert up.stop() in (0, -signal.SIGTERM), "\n".join(up.lines)

    assert (tmp_path / "omnidesk.db").exists()
    assert (tmp_path / ".omnidesk" / "secret_key").stat().st_mode & 0o077 == 0  # readable by its owner only

    token = subprocess.run([*_omnidesk(), "token", "create", "--admin"], cwd=tmp_path, capture_output=True,
                           text=True, env={**{k: v for k, v in os.environ.items() if not k.startswith("OMNIDESK_")},
                                           "PYTHONPATH": str(ROOT)}, check=True, timeout=60).stdout
    assert len(token.splitlines()) == 1 and len(token.strip()) >= 30

    again = _Up(tmp_path)
    try:
        again.wait_running()
        assert not any("admin token" in line for line in again.lines)  # only on first start
        api = httpx.Client(base_url=again.url + "/api/v1", headers={"Authorization": f"Bearer {token.strip()}"})
        conversations = api.get("/conversations").json()["items"]
        assert len(conversations) == 1
        # The channel secret still decrypts with the kept key: the webhook still verifies.
        body = json.dumps({"message_id": "demo-2", "from": {"id": "cust-1"}, "text": "Dziękuję!"}).encode()
        answer = httpx.post(f"{again.url}/webhooks/{channel_id}", content=body,
                            headers={"X-Omnidesk-Signature": sign(secret, body)})
        assert answer.status_code == 202, answer.text
    finally:
        again.stop()
