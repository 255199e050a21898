"""The shop's callback endpoint on loopback: a real HTTP server that records every delivery and
answers as told, so the API connector's real HTTP client meets real answers."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering
    before: Callable[[], None] | None = None  # runs once the request is read, before the answer


def as_answer(answer: Answer | int | float) -> Answer:
    if isinstance(answer, Answer):
        return answer
    return Answer(delay=answer) if isinstance(answer, float) else Answer(status=answer)


class Shop:
    """Records ``(headers, body)`` of each POST; ``answers`` are used in order, then 200. An answer
    is an ``Answer``, or for short a status (int) or a delay in seconds (float) before a 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[Answer | int | float] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with outer.lock:
                    outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    answer = as_answer(outer.answers.pop(0) if outer.answers else Answer())
                if answer.before is not None:
                    answer.before()
                time.sleep(answer.delay)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/replies"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]

    def delivery_ids(self) -> list[str]:
        """What a careful shop dedups by: the ``delivery_id`` of each request received."""
        return [b["delivery_id"] for b in self.bodies()]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
