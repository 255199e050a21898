"""A tiny channel for the tests of the channel infrastructure: the API channel (signed JSON in,
replies POSTed to the shop) that also carries what the new channels will send and say.

- inbound ``"files": [{"url", "filename", "content_type", "size"?}]``: remote attachments, fetched
  with a real HTTP client from the test's loopback file server (:class:`FileServer`);
- ``{"type": "opt_out" | "opt_in", "from": {"id"}, "reason"?}``: a :class:`ReachabilityUpdate`;
- replies: a shop answering 410 means the customer is unreachable (:class:`RecipientUnreachable`);
- ``send_rate`` in the config: one :class:`SendLimit` per channel.

Registered in ``connectors.REGISTRY`` by the ``remote_kind`` fixture, removed after the test.
"""

from __future__ import annotations

import dataclasses
import hmac
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import connectors
from connectors.api import EVENTS as API_EVENTS
from connectors.api import ApiConfig, ApiConnector, outcome, sign
from connectors.base import (
    Event,
    Fetched,
    InboundMessage,
    OutboundMessage,
    ReachabilityUpdate,
    RemoteAttachment,
    SendLimit,
    SendResult,
    WebhookRequest,
)
from connectors.errors import AuthError, PayloadError, PermanentError, RecipientUnreachable, TransientError

KIND = "remote_test"


class RemoteConfig(ApiConfig):
    send_rate: float | None = None


def _message(data: dict[str, Any], raw: bytes) -> list[Event]:
    [message] = API_EVENTS["message"](data, raw)
    files = data.get("files") or []
    if not isinstance(files, list):
        raise PayloadError("files: must be a list")
    remote = tuple(RemoteAttachment(ref=str(f["url"]), filename=str(f.get("filename", "file")),
                                    content_type=str(f.get("content_type", "application/octet-stream")),
                                    size=f.get("size")) for f in files)
    assert isinstance(message, InboundMessage)
    return [dataclasses.replace(message, remote_attachments=remote)]


def _reachability(reachable: bool):  # type: ignore[no-untyped-def]
    def parse(data: dict[str, Any], raw: bytes) -> list[Event]:
        return [ReachabilityUpdate(sender_external_id=str(data["from"]["id"]), reachable=reachable,
                                   reason=data.get("reason"), raw=raw)]
    return parse


# Made when the channel is first loaded (before any send slot is taken): making a client loads
# certificates, which would make the first send of a test late.
_CLIENT = httpx.Client(timeout=10, limits=httpx.Limits(max_connections=20))


def _client() -> httpx.Client:
    return _CLIENT


EVENTS = {"message": _message, "opt_out": _reachability(False), "opt_in": _reachability(True)}


class RemoteConnector(ApiConnector):
    kind = KIND
    Config = RemoteConfig
    config: RemoteConfig

    def parse(self, request: WebhookRequest) -> list[Event]:
        given = request.headers.get("x-omnidesk-signature", "")
        if not hmac.compare_digest(given.encode(), sign(self.config.secret.get_secret_value(), request.body).encode()):
            raise AuthError("missing or invalid X-Omnidesk-Signature")
        try:
            data = json.loads(request.body)
            handler = EVENTS[data.get("type", "message")]
        except (ValueError, KeyError, AttributeError):
            raise PayloadError("not a message of this test channel") from None
        return handler(data, request.body)

    def send(self, message: OutboundMessage) -> SendResult:
        """The reply as JSON to the callback, on one HTTP client kept for the process (as the
        providers' SDKs keep their sessions: a client made per send costs more than the send, and
        that cost, not the pacing, would set when the request reaches the receiver)."""
        body = json.dumps({"delivery_id": str(message.message_id), "to": {"id": message.to.external_id},
                           "text": message.text}).encode()
        try:
            response = _client().post(self.config.callback_url, content=body,
                                      headers={"X-Omnidesk-Signature": sign(self.config.secret.get_secret_value(),
                                                                            body)})
        except httpx.HTTPError as exc:
            raise TransientError(f"callback unreachable: {type(exc).__name__}") from None
        if response.status_code == 410:
            raise RecipientUnreachable("the customer blocked this channel")
        return outcome(response)

    def send_limits(self, message: OutboundMessage) -> tuple[SendLimit, ...]:
        rate = self.config.send_rate
        return (SendLimit(f"test:{self.channel_id}", rate),) if rate else ()

    def fetch(self, ref: str, max_bytes: int) -> Fetched:
        # Reads the whole body whatever its size: the worker's own limit is what is tested.
        try:
            response = httpx.get(ref, timeout=5)
        except httpx.HTTPError as exc:
            raise TransientError(f"file server unreachable: {type(exc).__name__}") from None
        if response.status_code == 404:
            raise PermanentError("the provider no longer has this file (HTTP 404)")
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(f"file server answered HTTP {response.status_code}",
                                 retry_after=float(response.headers["retry-after"])
                                 if "retry-after" in response.headers else None)
        if not response.is_success:
            raise PermanentError(f"file server answered HTTP {response.status_code}")
        return Fetched(response.content, content_type=response.headers.get("content-type"))


@pytest.fixture
def remote_kind(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setitem(connectors.REGISTRY, KIND, "tests.channels.remote:RemoteConnector")
    yield KIND


class FileServer:
    """Files on loopback: ``files[path] = (status, body)``; ``fail[path] = n`` answers 503 to the
    first n requests of a path. Records each GET's path and how many were in flight at once."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[int, bytes]] = {}
        self.fail: dict[str, int] = {}
        self.gets: list[str] = []
        self.delay = 0.0
        self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                import time

                with outer.lock:
                    outer.gets.append(self.path)
                    outer.in_flight += 1
                    outer.most_in_flight = max(outer.most_in_flight, outer.in_flight)
                    failing = outer.fail.get(self.path, 0)
                    if failing:
                        outer.fail[self.path] = failing - 1
                time.sleep(outer.delay)
                status, body = (503, b"busy") if failing else outer.files.get(self.path, (404, b"gone"))
                with outer.lock:
                    outer.in_flight -= 1
                self.send_response(status)
                self.send_header("Content-Type", "image/png" if status == 200 else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    server = FileServer()
    yield server
    server.close()
