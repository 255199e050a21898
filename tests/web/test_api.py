"""The HTTP API as agents and admins use it: tokens and roles, write-only secrets, clear 4xx
errors, visibility by team, presence and capacity pulling the queue, notes, assignment."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from store.sql import channels, conversations
from tests.support import CallbackServer, Running, wait_for

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])  # behaviour above the database


def _inbound(running: Running, channel_id: int, secret: str, n: str, **extra) -> None:  # type: ignore[no-untyped-def]
    payload = {"message_id": f"m-{n}", "from": {"id": f"cust-{n}", "name": f"Customer {n}"}, "text": f"hello {n}",
               **extra}
    assert running.post_inbound(channel_id, secret, payload).status_code == 202


def _routed(running: Running) -> bool:
    """No conversation is waiting for the router (those left unassigned wait in the queue)."""
    with running.engine.connect() as conn:
        return conn.execute(select(conversations.c.id).where(conversations.c.needs_routing.is_(True))).first() is None


def _conversation(running: Running, n: str) -> dict:  # type: ignore[type-arg]
    items = running.ok("GET", "/conversations")["items"]
    return next(i for i in items if i["contact"]["name"] == f"Customer {n}")


@SQLITE_ONLY
def test_tokens_and_roles(omnidesk: Running) -> None:
    assert omnidesk.http.get("/api/v1/conversations").status_code == 401
    wrong = omnidesk.api("GET", "/conversations", token="not-a-token")
    assert wrong.status_code == 401 and wrong.json()["detail"] == "invalid or revoked token"

    ana = omnidesk.agent("Ana", online=False)
    joan = omnidesk.agent("Joan", online=False)
    assert "token" not in omnidesk.ok("GET", f"/agents/{ana['id']}")
    assert omnidesk.ok("GET", "/me", token=ana["token"])["id"] == ana["id"]

    for method, path, body in [
        ("POST", "/channels", {"kind": "api", "name": "x", "config": {}}),
        ("GET", "/channels", None),
        ("POST", "/agents", {"name": "Eve", "email": "eve@shop.test"}),
        ("PATCH", f"/agents/{ana['id']}", {"capacity": 100}),
        ("POST", "/teams", {"name": "Hackers"}),
        ("GET", "/jobs/failed", None),
    ]:
        answer = omnidesk.api(method, path, token=ana["token"], json=body)
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json() == {"detail": "this needs an admin"}

    assert omnidesk.api("PUT", f"/agents/{joan['id']}/presence", token=ana["token"],
                        json={"status": "online"}).status_code == 403
    assert omnidesk.ok("PUT", f"/agents/{ana['id']}/presence", token=ana["token"],
                       json={"status": "online"})["status"] == "online"
    assert omnidesk.ok("GET", f"/agents/{ana['id']}")["presence"] == "online"

    omnidesk.ok("PATCH", f"/agents/{ana['id']}", json={"active": False})
    assert omnidesk.api("GET", "/me", token=ana["token"]).status_code == 401


@SQLITE_ONLY
def test_channel_secrets_are_write_only_and_encrypted(omnidesk: Running, callback: CallbackServer) -> None:
    secret = "first-secret-0123456789"
    created = omnidesk.ok("POST", "/channels", json={"kind": "api", "name": "Shop", "config": {
        "secret": secret, "callback_url": callback.url}})
    channel_id = created["id"]
    assert created["secrets_set"] == ["secret"]
    assert created["webhook_url"].endswith(f"/webhooks/{channel_id}")
    for shown in (created, omnidesk.ok("GET", f"/channels/{channel_id}"), omnidesk.ok("GET", "/channels")):
        assert secret not in json.dumps(shown)
    with omnidesk.engine.connect() as conn:
        row = conn.execute(select(channels).where(channels.c.id == channel_id)).one()
    assert secret not in json.dumps(row.config) and secret.encode() not in (row.secrets or "").encode()

    # A change that leaves the secret out keeps it.
    omnidesk.ok("PATCH", f"/channels/{channel_id}", json={"name": "Shop backend",
                                                          "config": {"callback_url": callback.url + "?v=2"}})
    _inbound(omnidesk, channel_id, secret, "1")
    # A new secret replaces the old one at once.
    new_secret = "second-secret-9876543210"
    omnidesk.ok("PATCH", f"/channels/{channel_id}", json={"config": {"secret": new_secret}})
    payload = {"message_id": "m-2", "from": {"id": "c"}, "text": "x"}
    assert omnidesk.post_inbound(channel_id, secret, payload).status_code == 401
    assert omnidesk.post_inbound(channel_id, new_secret, payload).status_code == 202

    # Disabled: webhooks refused, nothing stored.
    omnidesk.ok("PATCH", f"/channels/{channel_id}", json={"enabled": False})
    assert omnidesk.ok("GET", f"/channels/{channel_id}")["status"] == "disabled"
    refused = omnidesk.post_inbound(channel_id, new_secret, {"message_id": "m-3", "from": {"id": "c"}, "text": "x"})
    assert refused.status_code in (403, 404, 409), refused.text
    assert len(omnidesk.ok("GET", "/conversations")["items"]) == 2

    # A channel with history cannot be deleted, only disabled; an unused one can.
    assert omnidesk.api("DELETE", f"/channels/{channel_id}").status_code == 409
    spare = omnidesk.ok("POST", "/channels", json={"kind": "api", "name": "Spare", "config": {
        "secret": "spare-secret-0123456789", "callback_url": callback.url}})
    assert omnidesk.api("DELETE", f"/channels/{spare['id']}").status_code == 204
    assert omnidesk.api("GET", f"/channels/{spare['id']}").status_code == 404


@SQLITE_ONLY
def test_bad_input_gets_a_readable_4xx(omnidesk: Running) -> None:
    cases = [
        ("POST", "/channels", {"kind": "fax", "name": "x", "config": {}}, 422, "unknown channel kind"),
        ("POST", "/channels", {"kind": "api", "name": "x", "config": {"secret": "short"}}, 422, "secret"),
        ("POST", "/channels", {"kind": "api", "name": "x", "config": {"secret": "a" * 20}}, 422, "callback_url"),
        ("POST", "/channels", {"kind": "api", "name": "x", "config": {
            "secret": "a" * 20, "callback_url": "http://x", "colour": "red"}}, 422, "colour"),
        ("POST", "/agents", {"name": "Eve", "email": "not an address"}, 422, "email"),
        ("POST", "/agents", {"name": "Eve", "email": "eve@shop.test", "capacity": -1}, 422, "capacity"),
        ("PUT", "/agents/1/presence", {"status": "busy"}, 422, "status"),
        ("PUT", "/agents/999/presence", {"status": "online"}, 404, "no agent 999"),
        ("GET", "/conversations?status=closed", None, 422, "status"),
        ("GET", "/conversations/999", None, 404, "no conversation 999"),
        ("POST", "/conversations/999/messages", {"text": "hi"}, 404, "no conversation 999"),
        ("POST", "/conversations/999/assign", {"agent_id": None}, 404, "no conversation 999"),
        ("PATCH", "/conversations/999", {"priority": 1}, 404, "no conversation 999"),
        ("GET", "/attachments/999", None, 404, "no attachment 999"),
        ("POST", "/messages/999/retry", None, 404, "no message 999"),
    ]
    for method, path, body, status, fragment in cases:
        answer = omnidesk.api(method, path, json=body)
        assert answer.status_code == status, (method, path, answer.text)
        assert fragment in answer.json()["detail"], (method, path, answer.json())
    garbage = omnidesk.http.post("/api/v1/agents", content=b"{not json",
                                 headers={"Authorization": f"Bearer {omnidesk.admin_token}",
                                          "Content-Type": "application/json"})
    assert garbage.status_code == 422 and garbage.json()["detail"]


@SQLITE_ONLY
def test_agents_see_their_teams_and_the_shared_queue_only(omnidesk: Running, callback: CallbackServer) -> None:
    returns = omnidesk.agent("Ana", teams=["Returns"], online=False)
    billing = omnidesk.agent("Biel", teams=["Billing"], online=False)
    channel_id, secret = omnidesk.api_channel(callback.url)
    _inbound(omnidesk, channel_id, secret, "1")
    _inbound(omnidesk, channel_id, secret, "2")
    shared, billed = _conversation(omnidesk, "1"), _conversation(omnidesk, "2")
    billing_team = billing["teams"][0]
    omnidesk.ok("PATCH", f"/conversations/{billed['id']}", json={"team_id": billing_team, "priority": 3})

    def visible(agent: dict) -> set[int]:  # type: ignore[type-arg]
        return {i["id"] for i in omnidesk.ok("GET", "/conversations", token=agent["token"])["items"]}

    assert visible(returns) == {shared["id"]}
    assert visible(billing) == {shared["id"], billed["id"]}
    for method, path, body in [("GET", "", None), ("POST", "/messages", {"text": "x"}),
                               ("POST", "/resolve", None), ("PATCH", "", {"priority": 0})]:
        answer = omnidesk.api(method, f"/conversations/{billed['id']}{path}", token=returns["token"], json=body)
        assert answer.status_code == 404, (method, path, answer.text)
    detail = omnidesk.ok("GET", f"/conversations/{billed['id']}", token=billing["token"])
    assert detail["team_id"] == billing_team and detail["priority"] == 3

    # Only Biel is in Billing: when both come online, the Billing conversation goes to him.
    for agent in (returns, billing):
        omnidesk.ok("PUT", f"/agents/{agent['id']}/presence", token=agent["token"], json={"status": "online"})
    wait_for(lambda: omnidesk.ok("GET", f"/conversations/{billed['id']}")["assignee_id"] == billing["id"],
             what="the Billing conversation assigned to the Billing agent")
    assert omnidesk.api("PATCH", f"/conversations/{billed['id']}", json={"team_id": 999}).status_code == 422


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_presence_capacity_and_resolving_pull_the_queue(omnidesk: Running, callback: CallbackServer) -> None:
    ana = omnidesk.agent("Ana", capacity=1, online=False)
    channel_id, secret = omnidesk.api_channel(callback.url)
    for n in "123":
        _inbound(omnidesk, channel_id, secret, n)
    first, second, third = (_conversation(omnidesk, n) for n in "123")
    wait_for(lambda: _routed(omnidesk), what="the router to find nobody online")  # they wait in the queue
    assert all(c["assignee_id"] is None for c in (first, second, third))
    # The third is urgent: it jumps the queue.
    omnidesk.ok("PATCH", f"/conversations/{third['id']}", json={"priority": 5})

    def assignee(conv: dict) -> int | None:  # type: ignore[type-arg]
        return omnidesk.ok("GET", f"/conversations/{conv['id']}")["assignee_id"]

    omnidesk.ok("PUT", f"/agents/{ana['id']}/presence", token=ana["token"], json={"status": "online"})
    wait_for(lambda: assignee(third) == ana["id"], what="coming online to pull the urgent conversation")
    assert assignee(first) is None and assignee(second) is None

    omnidesk.ok("PATCH", f"/agents/{ana['id']}", json={"capacity": 2})
    wait_for(lambda: assignee(first) == ana["id"], what="more capacity to pull the oldest waiting one")
    assert assignee(second) is None

    omnidesk.ok("POST", f"/conversations/{third['id']}/resolve", token=ana["token"])
    wait_for(lambda: assignee(second) == ana["id"], what="resolving to pull the next one")
    assert omnidesk.ok("GET", f"/agents/{ana['id']}")["active_conversations"] == 2

    # Away: nothing new is given to her.
    omnidesk.ok("PUT", f"/agents/{ana['id']}/presence", token=ana["token"], json={"status": "away"})
    _inbound(omnidesk, channel_id, secret, "4")
    omnidesk.ok("POST", f"/conversations/{first['id']}/resolve", token=ana["token"])
    fourth = _conversation(omnidesk, "4")
    time.sleep(1.5)  # three sweeps: nobody online may take it
    assert assignee(fourth) is None


@SQLITE_ONLY
def test_manual_assignment_notes_and_snooze(omnidesk: Running, callback: CallbackServer) -> None:
    ana = omnidesk.agent("Ana", capacity=5)
    biel = omnidesk.agent("Biel", capacity=5, online=False)
    channel_id, secret = omnidesk.api_channel(callback.url)
    _inbound(omnidesk, channel_id, secret, "1")
    conv = wait_for(lambda: (c := _conversation(omnidesk, "1"))["assignee_id"] and c, what="routing")
    assert conv["assignee_id"] == ana["id"]

    moved = omnidesk.ok("POST", f"/conversations/{conv['id']}/assign", json={"agent_id": biel["id"]})
    assert moved["assignee_id"] == biel["id"]
    counts = {a["id"]: a["active_conversations"] for a in omnidesk.ok("GET", "/agents")["items"]}
    assert counts[ana["id"]] == 0 and counts[biel["id"]] == 1
    assert omnidesk.api("POST", f"/conversations/{conv['id']}/assign", json={"agent_id": 999}).status_code == 404

    note = omnidesk.ok("POST", f"/conversations/{conv['id']}/messages", token=biel["token"],
                       json={"text": "Customer is a VIP, be quick", "private": True})
    assert note["private"] is True
    omnidesk.ok("POST", f"/conversations/{conv['id']}/messages", token=biel["token"], json={"text": "On its way!"})
    wait_for(lambda: callback.requests, what="the reply delivered")
    messages = omnidesk.ok("GET", f"/conversations/{conv['id']}")["messages"]
    assert [(m["direction"], m["private"]) for m in messages] == [("in", False), ("out", True), ("out", False)]
    time.sleep(1.0)  # had the note gone out too, it would be here by now
    assert [json.loads(body)["text"] for _, body in callback.requests] == ["On its way!"]

    unassigned = omnidesk.ok("POST", f"/conversations/{conv['id']}/assign", json={"agent_id": None})
    assert unassigned["assignee_id"] is None
    # Biel is offline; back in the queue, the router gives it to Ana again.
    wait_for(lambda: _conversation(omnidesk, "1")["assignee_id"] == ana["id"], what="the queue to hand it to Ana")

    until = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    snoozed = omnidesk.ok("PATCH", f"/conversations/{conv['id']}", json={"status": "snoozed", "snoozed_until": until})
    assert snoozed["status"] == "snoozed"
    assert omnidesk.api("PATCH", f"/conversations/{conv['id']}", json={"status": "snoozed"}).status_code == 422
    wait_for(lambda: _conversation(omnidesk, "1")["status"] == "open", timeout=15, what="the snooze to end")
    resolved = omnidesk.ok("POST", f"/conversations/{conv['id']}/resolve")
    assert resolved["status"] == "resolved" and resolved["resolved_at"]
    assert omnidesk.api("PATCH", f"/conversations/{conv['id']}", json={"status": "pending"}).status_code == 409
    assert omnidesk.ok("POST", f"/conversations/{conv['id']}/reopen")["status"] == "open"


def test_the_last_active_admin_stays_an_admin(omnidesk: Running) -> None:
    """Demoting or deactivating the only active admin would leave nobody to manage the shop: 409,
    nothing changed; once there is another admin, either change is allowed."""
    me = omnidesk.ok("GET", "/me")
    for change in ({"role": "agent"}, {"active": False}):
        refused = omnidesk.api("PATCH", f"/agents/{me['id']}", json=change)
        assert refused.status_code == 409 and "last active admin" in refused.json()["detail"]
    assert omnidesk.ok("GET", "/me")["role"] == "admin"
    other = omnidesk.ok("POST", "/agents", json={"name": "Bo", "email": "bo@shop.test", "role": "admin"})
    omnidesk.ok("PATCH", f"/agents/{me['id']}", json={"role": "agent"})
    refused = omnidesk.api("PATCH", f"/agents/{other['id']}", json={"active": False}, token=other["token"])
    assert refused.status_code == 409  # now the last one is Bo
