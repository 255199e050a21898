"""A customer who cannot be reached, through the API: a send the channel refuses as unreachable
fails the reply with its reason and marks the customer; the next reply is refused with 422 at once
(a private note is not); the conversation and contact show the reason; the channel's opt-in ends it."""

from __future__ import annotations

import json

from tests.channels.remote import remote_kind  # noqa: F401 - fixture
from tests.support import CallbackServer, Running, wait_for

SECRET = "a-shared-secret-of-the-shop"


def test_unreachable_customer_end_to_end(omnidesk: Running, callback: CallbackServer, remote_kind: str) -> None:  # noqa: F811
    channel = omnidesk.ok("POST", "/channels", json={"kind": "remote_test", "name": "Chat", "config": {
        "secret": SECRET, "callback_url": callback.url}})
    assert omnidesk.post_inbound(channel["id"], SECRET, {"message_id": "in-1", "from": {"id": "c1"},
                                                         "text": "hi"}).status_code == 202
    [conv] = wait_for(lambda: omnidesk.ok("GET", "/conversations")["items"], what="the conversation")
    assert conv["unreachable_reason"] is None
    callback.answers = [410]
    reply = omnidesk.ok("POST", f"/conversations/{conv['id']}/messages", json={"text": "your parcel"})

    def failed() -> dict | None:  # type: ignore[type-arg]
        found = omnidesk.ok("GET", f"/conversations/{conv['id']}")
        sent = next(m for m in found["messages"] if m["id"] == reply["id"])
        return found if sent["status"] == "failed" else None

    detail = wait_for(failed, timeout=15, what="the reply failed")
    sent = next(m for m in detail["messages"] if m["id"] == reply["id"])
    assert sent["status_reason"] == "the customer blocked this channel"
    blocked = "the customer blocked this channel"
    assert detail["unreachable_reason"] == detail["contact"]["unreachable_reason"] == blocked
    assert len(callback.requests) == 1  # not retried
    refused = omnidesk.api("POST", f"/conversations/{conv['id']}/messages", json={"text": "hello?"})
    assert refused.status_code == 422
    assert refused.json()["detail"] == ("the customer cannot be reached on this channel: "
                                        "the customer blocked this channel")
    assert omnidesk.api("POST", f"/conversations/{conv['id']}/messages",
                        json={"text": "they blocked us", "private": True}).status_code == 202
    [listed] = omnidesk.ok("GET", "/conversations")["items"]
    assert listed["unreachable_reason"] == "the customer blocked this channel"
    # The channel says the customer opted back in: replies go again.
    assert omnidesk.post_inbound(channel["id"], SECRET, {"type": "opt_in", "from": {"id": "c1"}}).status_code == 202
    assert omnidesk.ok("GET", f"/conversations/{conv['id']}")["unreachable_reason"] is None
    again = omnidesk.ok("POST", f"/conversations/{conv['id']}/messages", json={"text": "welcome back"})
    wait_for(lambda: len(callback.requests) == 2, timeout=15, what="the reply after the opt-in")
    assert json.loads(callback.requests[1][1])["delivery_id"] == str(again["id"])
    # An opt-out the channel announces refuses replies at once too.
    assert omnidesk.post_inbound(channel["id"], SECRET, {"type": "opt_out", "from": {"id": "c1"},
                                                         "reason": "replied STOP"}).status_code == 202
    refused = omnidesk.api("POST", f"/conversations/{conv['id']}/messages", json={"text": "hello?"})
    assert refused.status_code == 422 and "replied STOP" in refused.json()["detail"]
