"""The API channel's webhook over real HTTP: events we do not use are answered 200 and ignored,
hostile bodies and ids get 400 and 404, never 500."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from connectors.api import sign
from store.sql import messages
from tests.support import Running


def _stored(desk: Running) -> int:
    with desk.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(messages)).scalar_one()


def _post(desk: Running, path: str, body: bytes, secret: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    response = desk.http.post(path, content=body, headers={"X-Omnidesk-Signature": sign(secret, body)})
    return response.status_code, response.json()


def test_an_event_we_do_not_use_is_answered_200_and_ignored(omnidesk: Running, callback) -> None:  # type: ignore[no-untyped-def]
    channel_id, secret = omnidesk.api_channel(callback.url)
    closed = json.dumps({"type": "conversation.closed", "thread": "order-1"}).encode()
    status, answer = _post(omnidesk, f"/webhooks/{channel_id}", closed, secret)
    assert (status, answer) == (200, {"ignored": "event 'conversation.closed' is not used; ignored"})
    assert _stored(omnidesk) == 0
    # Unsigned, the same event is refused: nothing is looked at before the signature holds.
    response = omnidesk.http.post(f"/webhooks/{channel_id}", content=closed,
                                  headers={"X-Omnidesk-Signature": sign("not-the-secret-at-all", closed)})
    assert response.status_code == 401
    # A message of the type we use still goes in.
    message = json.dumps({"type": "message", "message_id": "m1", "from": {"id": "c1"}, "text": "hi"}).encode()
    assert _post(omnidesk, f"/webhooks/{channel_id}", message, secret) == (202, {"stored": 1, "duplicates": 0})


def test_a_signed_body_nested_100000_deep_is_a_400(omnidesk: Running, callback) -> None:  # type: ignore[no-untyped-def]
    channel_id, secret = omnidesk.api_channel(callback.url)
    deep = b"[" * 100_000 + b"]" * 100_000
    status, answer = _post(omnidesk, f"/webhooks/{channel_id}", deep, secret)
    assert status == 400 and "not JSON" in answer["detail"]
    wrapped = b'{"message_id": "1", "from": {"id": "c"}, "text": "hi", "x": ' + b'{"a":' * 100_000 + b"1" + \
        b"}" * 100_000 + b"}"
    assert _post(omnidesk, f"/webhooks/{channel_id}", wrapped, secret)[0] == 400
    assert _stored(omnidesk) == 0


LARGE = ["2147483648", "9223372036854775807", "9223372036854775808", "18446744073709551616", "9" * 23, "1" * 40, "0"]


@pytest.mark.parametrize("channel_id", LARGE)
def test_ids_no_channel_has_are_404_however_large(omnidesk: Running, channel_id: str) -> None:
    body = b'{"message_id": "1", "from": {"id": "c"}, "text": "hi"}'
    response = omnidesk.http.post(f"/webhooks/{channel_id}", content=body,
                                  headers={"X-Omnidesk-Signature": sign("whatever-secret-16", body)})
    assert response.status_code == 404, response.text
    assert response.json()["detail"].startswith("no channel")
    assert omnidesk.http.get("/healthz").status_code == 200  # and the server is none the worse
