"""Input past what the database or the calendar holds is refused (404 or 422), never a 500:
integers of 2^63 and more in paths, queries and bodies, a snooze time of year 1 with an offset;
and a misspelt presence key names the key expected."""

from __future__ import annotations

import pytest

from connectors.api import sign
from tests.support import CallbackServer, Running

HUGE = [2**31, 2**63, 10**23]  # past the 32-bit id columns, past 64 bits, past everything


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_huge_ids_are_refused_not_crashed_on(omnidesk: Running, callback: CallbackServer) -> None:
    ana = omnidesk.agent("Ana", online=False)
    channel_id, secret = omnidesk.api_channel(callback.url)
    sent = omnidesk.post_inbound(channel_id, secret, {"message_id": "m-1", "from": {"id": "c"}, "text": "hi"})
    assert sent.status_code == 202
    conv = omnidesk.ok("GET", "/conversations")["items"][0]
    for big in HUGE:
        cases = [
            ("GET", f"/conversations/{big}", None),
            ("POST", f"/conversations/{big}/messages", {"text": "x"}),
            ("POST", f"/conversations/{big}/assign", {"agent_id": None}),
            ("PATCH", f"/conversations/{big}", {"priority": 1}),
            ("GET", f"/conversations?cursor={big}", None),
            ("GET", f"/conversations?assignee_id={big}", None),
            ("GET", f"/conversations?channel_id={big}", None),
            ("PATCH", f"/conversations/{conv['id']}", {"team_id": big}),
            ("POST", f"/conversations/{conv['id']}/assign", {"agent_id": big}),
            ("POST", f"/messages/{big}/retry", None),
            ("GET", f"/attachments/{big}", None),
            ("GET", f"/agents/{big}", None),
            ("PATCH", f"/agents/{big}", {"capacity": 1}),
            ("PATCH", f"/agents/{ana['id']}", {"teams": [big]}),
            ("PUT", f"/agents/{big}/presence", {"status": "online"}),
            ("POST", "/agents", {"name": "Eve", "email": "eve@shop.test", "teams": [big]}),
            ("GET", f"/channels/{big}", None),
            ("PATCH", f"/channels/{big}", {"name": "x"}),
            ("DELETE", f"/channels/{big}", None),
        ]
        for method, path, body in cases:
            answer = omnidesk.api(method, path, json=body)
            assert answer.status_code in (404, 422), (method, path, answer.status_code, answer.text)
            assert isinstance(answer.json()["detail"], str)
        for hook in (omnidesk.http.post(f"/webhooks/{big}", content=b"{}"),
                     omnidesk.http.post(f"/webhooks/{big}/status", content=b"{}"),
                     omnidesk.http.get(f"/webhooks/{big}")):
            assert hook.status_code == 404, hook.text
    # The API channel takes its messages at /webhooks/{id} only: a signed post to a sub-route or a
    # GET is refused, and nothing is stored.
    body = b'{"message_id": "m-2", "from": {"id": "c"}, "text": "again"}'
    for method, path in (("POST", f"/webhooks/{channel_id}/status"), ("GET", f"/webhooks/{channel_id}")):
        hook = omnidesk.http.request(method, path, content=body, headers={"X-Omnidesk-Signature": sign(secret, body)})
        assert hook.status_code == 400 and "only as POST" in hook.json()["detail"], hook.text
    assert len(omnidesk.ok("GET", f"/conversations/{conv['id']}")["messages"]) == 1
    # Nothing was half done: no agent Eve, Ana's teams as they were.
    assert [a["name"] for a in omnidesk.ok("GET", "/agents")["items"]].count("Eve") == 0
    assert omnidesk.ok("GET", f"/agents/{ana['id']}")["teams"] == []


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_snooze_time_utc_cannot_hold_is_a_422(omnidesk: Running, callback: CallbackServer) -> None:
    channel_id, secret = omnidesk.api_channel(callback.url)
    omnidesk.post_inbound(channel_id, secret, {"message_id": "m-1", "from": {"id": "c"}, "text": "hi"})
    conv = omnidesk.ok("GET", "/conversations")["items"][0]
    for until in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00"):
        answer = omnidesk.api("PATCH", f"/conversations/{conv['id']}", json={"status": "snoozed",
                                                                             "snoozed_until": until})
        assert answer.status_code == 422, answer.text
        assert "snoozed_until" in answer.json()["detail"]
    assert omnidesk.ok("GET", f"/conversations/{conv['id']}")["status"] == "open"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_misspelt_presence_key_says_which_key_is_wanted(omnidesk: Running) -> None:
    ana = omnidesk.agent("Ana", online=False)
    answer = omnidesk.api("PUT", f"/agents/{ana['id']}/presence", token=ana["token"], json={"state": "online"})
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert "status: Field required" in detail and "state" in detail, detail
    assert omnidesk.ok("GET", f"/agents/{ana['id']}")["presence"] == "offline"
