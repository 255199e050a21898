"""Replies are delivered or marked failed with a reason the agent can read: retries with backoff on
5xx, timeouts and unreachable callbacks; a 4xx fails at once; attempts are capped; a failed reply can
be sent again."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from tests import support
from tests.support import CallbackServer, Running, wait_for


@pytest.fixture
def desk(backend: str, database_url: str, tmp_path) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    """omnidesk with quick retries (0.2 s, doubling) and at most 3 attempts a reply."""
    with support.running_omnidesk(backend, database_url, tmp_path, OMNIDESK_RETRY_BASE="0.2",
                                  OMNIDESK_MAX_ATTEMPTS="3") as running:
        yield running


def _conversation_with_reply(desk: Running, callback_url: str, text: str = "Your parcel left today") -> tuple[int, int]:
    agent = desk.agent("Ana")
    channel_id, secret = desk.api_channel(callback_url)
    assert desk.post_inbound(channel_id, secret, {"message_id": "in-1", "from": {"id": "c1"},
                                                  "text": "Where is my parcel?"}).status_code == 202
    conv = wait_for(lambda: (items := desk.ok("GET", "/conversations")["items"]) and items[0]["assignee_id"]
                    and items[0], what="routing")
    reply = desk.ok("POST", f"/conversations/{conv['id']}/messages", token=agent["token"], json={"text": text})
    return conv["id"], reply["id"]


def _reply(desk: Running, conversation_id: int, message_id: int) -> dict:  # type: ignore[type-arg]
    messages = desk.ok("GET", f"/conversations/{conversation_id}")["messages"]
    return next(m for m in messages if m["id"] == message_id)


def _settled(desk: Running, conversation_id: int, message_id: int) -> dict | None:  # type: ignore[type-arg]
    reply = _reply(desk, conversation_id, message_id)
    return reply if reply["status"] in ("delivered", "failed") else None


def test_server_errors_and_timeouts_are_retried_until_delivered(desk: Running, callback: CallbackServer) -> None:
    callback.answers = [500, 503]
    conv_id, reply_id = _conversation_with_reply(desk, callback.url)
    reply = wait_for(lambda: _settled(desk, conv_id, reply_id), timeout=20, what="delivery after two 5xx")
    assert reply["status"] == "delivered"
    bodies = [json.loads(body) for _, body in callback.requests]
    assert len(bodies) == 3 and all(b == bodies[0] for b in bodies)  # the same reply, three attempts
    assert bodies[0]["text"] == "Your parcel left today"


def test_a_timeout_is_retried(backend: str, database_url: str, tmp_path, callback: CallbackServer) -> None:  # type: ignore[no-untyped-def]
    with support.running_omnidesk(backend, database_url, tmp_path, OMNIDESK_RETRY_BASE="0.2") as desk:
        channel = desk.ok("POST", "/channels", json={"kind": "api", "name": "Slow shop", "config": {
            "secret": "a-secret-of-sixteen+", "callback_url": callback.url, "timeout": 0.5}})
        agent = desk.agent("Ana")
        desk.post_inbound(channel["id"], "a-secret-of-sixteen+", {"message_id": "1", "from": {"id": "c"}, "text": "?"})
        conv = wait_for(lambda: (i := desk.ok("GET", "/conversations")["items"]) and i[0]["assignee_id"] and i[0])
        callback.answers = [2.0]  # the first attempt answers after the 0.5 s timeout
        reply = desk.ok("POST", f"/conversations/{conv['id']}/messages", token=agent["token"], json={"text": "!"})
        wait_for(lambda: len(callback.requests) >= 1, what="the first attempt")
        pending = wait_for(lambda: (r := _reply(desk, conv["id"], reply["id"]))["status_reason"] and r,
                           what="the timeout recorded")
        assert "timed out" in pending["status_reason"]
        delivered = wait_for(lambda: _settled(desk, conv["id"], reply["id"]), timeout=20, what="delivery")
        assert delivered["status"] == "delivered" and delivered["status_reason"] is None


def test_a_client_error_fails_at_once_with_the_reason_and_can_be_retried(
    desk: Running, callback: CallbackServer
) -> None:
    callback.answers = [400]
    conv_id, reply_id = _conversation_with_reply(desk, callback.url)
    reply = wait_for(lambda: _settled(desk, conv_id, reply_id), what="the 400 to fail the reply")
    assert reply["status"] == "failed"
    assert "HTTP 400" in reply["status_reason"]
    assert len(callback.requests) == 1
    failed = desk.ok("GET", "/jobs/failed")["items"]
    assert {"job": "deliver", "message_id": reply_id}.items() <= next(
        f for f in failed if f.get("message_id") == reply_id).items()

    # The shop fixed its endpoint: the agent sends it again.
    assert desk.ok("POST", f"/messages/{reply_id}/retry")["status"] == "pending"
    reply = wait_for(lambda: _settled(desk, conv_id, reply_id), what="the retried reply")
    assert reply["status"] == "delivered" and len(callback.requests) == 2
    assert desk.api("POST", f"/messages/{reply_id}/retry").status_code == 409  # only failed ones


def test_attempts_are_capped(desk: Running, callback: CallbackServer) -> None:
    callback.answers = [502] * 10
    conv_id, reply_id = _conversation_with_reply(desk, callback.url)
    reply = wait_for(lambda: _settled(desk, conv_id, reply_id), timeout=30, what="the reply to give up")
    assert reply["status"] == "failed"
    assert reply["status_reason"].startswith("gave up after 3 attempts")
    assert "HTTP 502" in reply["status_reason"]
    assert len(callback.requests) == 3


def test_an_unreachable_callback_fails_with_a_readable_reason(desk: Running) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/replies"
    conv_id, reply_id = _conversation_with_reply(desk, dead)
    reply = wait_for(lambda: _settled(desk, conv_id, reply_id), timeout=30, what="the reply to give up")
    assert reply["status"] == "failed"
    assert "unreachable" in reply["status_reason"]
