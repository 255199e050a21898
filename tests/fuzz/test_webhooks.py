"""Fuzzing the webhook end to end: correctly signed hostile bodies through the real server and
database (both backends) are stored (2xx) or refused (4xx), never answered 5xx; so is a post to
any channel id, with any query string."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.api import sign
from tests.fuzz.strategies import BIG_INTS, api_payloads, budget, hostile_text
from tests.support import CallbackServer, Running

SECRET = "fuzz-webhook-secret-0123456789"
# Query strings as a client can send them (UTF-8: lone surrogates become "?").
query_text = hostile_text.map(lambda s: s.encode("utf-8", "replace").decode("utf-8"))


@pytest.fixture
def channel_id(omnidesk: Running, callback: CallbackServer) -> int:
    """An API channel on the running server, made once for all the examples of a test."""
    return omnidesk.api_channel(callback.url, secret=SECRET)[0]


def post(omnidesk: Running, path: str, body: bytes, secret: str = SECRET) -> int:
    # A connection of its own: after a 500 the server drops the connection, failing the next request.
    response = omnidesk.http.post(path, content=body, headers={"X-Omnidesk-Signature": sign(secret, body),
                                                                "Content-Type": "application/json",
                                                                "Connection": "close"})
    assert response.status_code < 500, f"{response.status_code} {response.text} for {body[:300]!r}"
    assert isinstance(response.json(), dict)
    return response.status_code


@given(body=api_payloads())
@budget(120)
def test_signed_bodies_are_stored_or_refused(omnidesk: Running, channel_id: int, body: bytes) -> None:
    """Stored (202), or refused as unreadable (400) or too big or deep (413)."""
    assert post(omnidesk, f"/webhooks/{channel_id}", body) in (202, 400, 413)


@given(message_id=st.one_of(st.uuids().map(str), hostile_text.filter(str.strip)),
       sender=hostile_text.filter(str.strip), text=hostile_text,
       subject=st.one_of(st.none(), hostile_text))
@budget(80)
def test_well_formed_hostile_messages_are_stored_or_refused(
    omnidesk: Running, channel_id: int, message_id: str, sender: str, text: str, subject: str | None
) -> None:
    """Strings with NUL, controls and lone surrogates in every field the store keeps: stored
    (202), or refused as unreadable (400), never a failed transaction (500)."""
    payload = {"message_id": message_id, "from": {"id": sender, "name": text[:300]}, "text": text,
               "subject": subject, "thread": sender}
    assert post(omnidesk, f"/webhooks/{channel_id}", json.dumps(payload).encode()) in (202, 400)


@given(target=st.one_of(st.integers(), BIG_INTS, st.just(2**63)),
       query=st.dictionaries(query_text, query_text, max_size=3))
@budget(60)
def test_any_channel_id_and_query_are_answered(omnidesk: Running, target: int, query: dict[str, str]) -> None:
    """Unknown, negative and huge (past 64 bits) channel ids: 404 (or 401/400/422), never 500."""
    body = json.dumps({"message_id": "m", "from": {"id": "c"}, "text": "hi"}).encode()
    response = omnidesk.http.post(f"/webhooks/{target}", params=query, content=body,
                                  headers={"X-Omnidesk-Signature": sign(SECRET, body), "Connection": "close"})
    assert response.status_code < 500, f"{response.status_code} {response.text} for id {target}, {query!r}"
