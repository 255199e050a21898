"""The API channel's inbound webhooks: the fixtures are the test (one case per ``fixtures/*.json``,
its expectation beside it in ``*.expect.json``), plus the signature and the hostile bodies."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from connectors.api import ApiConfig, ApiConnector, sign
from connectors.base import InboundMessage, WebhookRequest
from connectors.errors import AuthError, PayloadError, UnsupportedEvent

FIXTURES = Path(__file__).with_name("fixtures")
BODIES = sorted(p for p in FIXTURES.glob("*.json") if not p.name.endswith(".expect.json"))
SECRET = "a-shared-secret-of-the-shop"


def connector() -> ApiConnector:
    return ApiConnector(ApiConfig(secret=SECRET, callback_url="http://127.0.0.1:9/replies"))


def request(body: bytes, signature: str | None = None) -> WebhookRequest:
    headers = {"x-omnidesk-signature": sign(SECRET, body) if signature is None else signature}
    return WebhookRequest(method="POST", url="http://desk.test/webhooks/1", headers=headers, query={}, body=body)


def test_every_fixture_has_its_expectation() -> None:
    assert len(BODIES) >= 10
    missing = [p.name for p in BODIES if not p.with_name(p.stem + ".expect.json").exists()]
    assert missing == []


@pytest.mark.parametrize("path", BODIES, ids=[p.stem for p in BODIES])
def test_fixture(path: Path) -> None:
    body = path.read_bytes()
    expect: dict[str, Any] = json.loads(path.with_name(path.stem + ".expect.json").read_text(encoding="utf-8"))
    if "error" in expect:
        with pytest.raises(PayloadError) as caught:
            connector().parse(request(body))
        assert type(caught.value).__name__ == expect["error"]
        assert expect["contains"] in str(caught.value)
    elif "unsupported" in expect:
        with pytest.raises(UnsupportedEvent) as ignored:
            connector().parse(request(body))
        assert ignored.value.event == expect["unsupported"]
    else:
        events = connector().parse(request(body))
        assert [_plain(e) for e in events] == expect["events"]
        assert all(isinstance(e, InboundMessage) and e.raw == body for e in events)  # kept for audit


def _plain(event: Any) -> dict[str, Any]:
    keep = ("external_id", "sender", "text", "thread_key", "subject", "language")
    values = {k: v for k, v in dataclasses.asdict(event).items() if k in keep}
    return values


WRONG = ["", "sha256=", "sha256=" + "0" * 64, "sha1=abc", sign("another-secret-16+", b"{}")]


@pytest.mark.parametrize("signature", WRONG)
def test_a_missing_or_wrong_signature_is_refused_before_the_body_is_read(signature: str) -> None:
    body = (FIXTURES / "message_minimal.json").read_bytes()
    with pytest.raises(AuthError):
        connector().parse(request(body, signature))
    with pytest.raises(AuthError):  # even for a body that is not JSON: nothing unsigned is parsed
        connector().parse(request(b"\x00not json", signature))


def test_a_body_signed_over_other_bytes_is_refused() -> None:
    body = (FIXTURES / "message_minimal.json").read_bytes()
    with pytest.raises(AuthError):
        connector().parse(request(body.replace(b"Norway", b"Sweden"), sign(SECRET, body)))


@pytest.mark.parametrize("depth", [100_000, 1_000_000])
def test_a_body_nested_deep_is_a_payload_error(depth: int) -> None:
    body = b"[" * depth + b"]" * depth
    with pytest.raises(PayloadError, match="not JSON"):
        connector().parse(request(body))
    head = b'{"message_id": "1", "from": {"id": "c"}, "text": "hi", "x": '
    nested = head + b'{"a":' * depth + b"1" + b"}" * depth + b"}"
    with pytest.raises(PayloadError, match="not JSON"):
        connector().parse(request(nested))


def test_sub_routes_and_gets_are_refused_even_when_signed() -> None:
    body = json.dumps({"message_id": "m1", "from": {"id": "c1"}, "text": "hi"}).encode()
    headers = {"x-omnidesk-signature": sign(SECRET, body)}
    for method, route in (("POST", "status"), ("GET", "")):
        hook = WebhookRequest(method=method, url="http://desk.test/webhooks/1", headers=headers, query={},
                              body=body, route=route)
        with pytest.raises(PayloadError, match="only as POST"):
            connector().parse(hook)
