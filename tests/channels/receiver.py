"""A shop endpoint in a process of its own that notes when each POST arrives (its own clock, not
slowed by the omnidesk process under test): ``GET /times`` answers the arrival times as JSON.
Run as ``python -m tests.channels.receiver PORT``."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
from typing import Any

from tests import support


def serve(port: int) -> None:
    times: list[float] = []
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            with lock:
                times.append(time.monotonic())
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            with lock:
                body = json.dumps(times).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


class Receiver:
    def __init__(self) -> None:
        import httpx

        port = support.free_port()
        self.url = f"http://127.0.0.1:{port}/replies"
        self.process = subprocess.Popen([sys.executable, "-m", "tests.channels.receiver", str(port)])
        support.wait_for(lambda: _answers(httpx, port), timeout=10, what="the receiver")
        self.port = port

    def times(self) -> list[float]:
        import httpx

        return httpx.get(f"http://127.0.0.1:{self.port}/times").json()

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _answers(httpx: Any, port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/times", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    serve(int(sys.argv[1]))
