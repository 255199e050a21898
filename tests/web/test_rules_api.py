"""Routing rules through the API (admins only; validated with reasons) and conversation tags
(added and removed by agents and by rules, shown and filtered in the list), on both databases."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.support import CallbackServer, Running, wait_for

REFUNDS: dict[str, Any] = {
    "name": "Refunds",
    "conditions": [{"type": "channel_kind", "in": ["api"]}, {"type": "words", "any": ["refund", "reembolso"]}],
    "actions": [{"type": "set_priority", "value": "high"}, {"type": "add_tag", "value": "refund"}],
}


def test_admins_create_list_change_and_delete_rules(omnidesk: Running) -> None:
    first = omnidesk.ok("POST", "/rules", json=REFUNDS)
    assert first["enabled"] is True and first["conditions"] == REFUNDS["conditions"]
    second = omnidesk.ok("POST", "/rules", json={"name": "Everything", "actions": [
        {"type": "add_skill", "value": "general"}]})
    assert second["position"] > first["position"] and second["conditions"] == []
    assert [r["id"] for r in omnidesk.ok("GET", "/rules")["items"]] == [first["id"], second["id"]]

    moved = omnidesk.ok("PATCH", f"/rules/{second['id']}", json={"position": first["position"] - 1, "enabled": False})
    assert moved["enabled"] is False and moved["actions"] == second["actions"]
    assert [r["id"] for r in omnidesk.ok("GET", "/rules")["items"]] == [second["id"], first["id"]]
    changed = omnidesk.ok("PATCH", f"/rules/{first['id']}", json={"conditions": [{"type": "language", "in": ["ES"]}]})
    assert changed["conditions"] == [{"type": "language", "in": ["es"]}] and changed["name"] == "Refunds"
    assert omnidesk.ok("GET", f"/rules/{first['id']}") == changed

    assert omnidesk.api("DELETE", f"/rules/{second['id']}").status_code == 204
    assert omnidesk.api("DELETE", f"/rules/{second['id']}").status_code == 404
    assert omnidesk.api("GET", f"/rules/{second['id']}").status_code == 404
    assert omnidesk.api("PATCH", f"/rules/{second['id']}", json={"name": "x"}).status_code == 404
    assert [r["id"] for r in omnidesk.ok("GET", "/rules")["items"]] == [first["id"]]


def test_malformed_rules_answer_422_with_the_reason(omnidesk: Running) -> None:
    def refused(body: dict[str, Any], reason: str, method: str = "POST", path: str = "/rules") -> None:
        answer = omnidesk.api(method, path, json=body)
        assert answer.status_code == 422, answer.text
        assert reason in answer.json()["detail"], answer.json()["detail"]

    refused({"name": "x", "actions": []}, "actions")
    refused({"name": "", "actions": REFUNDS["actions"]}, "name")
    refused({**REFUNDS, "conditions": [{"type": "weather", "in": ["rain"]}]}, "weather")
    refused({**REFUNDS, "conditions": [{"type": "business_hours", "is": "maybe"}]}, "'open' or 'closed'")
    refused({**REFUNDS, "actions": [{"type": "set_priority", "value": "asap"}]}, "'urgent', 'high', 'normal' or 'low'")
    refused({**REFUNDS, "actions": [{"type": "set_team", "team_id": 987654}]}, "no team 987654")
    refused({**REFUNDS, "conditions": [{"type": "channel", "in": [987654]}]}, "no channel 987654")
    refused({**REFUNDS, "conditions": [{"type": "channel", "in": [2**40]}]}, "less than or equal")
    refused({**REFUNDS, "actions": [{"type": "set_team", "team_id": 2**40}]}, "less than or equal")
    refused({**REFUNDS, "conditions": [{"type": "words", "any": ["a\x00b"]}]}, "NUL")
    refused({**REFUNDS, "conditions": [{"type": "channel_kind", "in": ["fax"]}]}, "unknown kind 'fax'")
    refused({**REFUNDS, "surprise": 1}, "surprise")
    rule = omnidesk.ok("POST", "/rules", json=REFUNDS)
    refused({"enabled": None}, "enabled cannot be null", "PATCH", f"/rules/{rule['id']}")
    refused({"actions": [{"type": "add_tag", "value": "a,b"}]}, "actions", "PATCH", f"/rules/{rule['id']}")
    assert omnidesk.ok("GET", f"/rules/{rule['id']}")["actions"] == REFUNDS["actions"]  # nothing changed


def test_agents_may_not_see_or_change_rules(omnidesk: Running) -> None:
    rule = omnidesk.ok("POST", "/rules", json=REFUNDS)
    bo = omnidesk.agent("Bo", online=False)
    for method, path, body in [("GET", "/rules", None), ("POST", "/rules", REFUNDS),
                               ("GET", f"/rules/{rule['id']}", None), ("PATCH", f"/rules/{rule['id']}", {"name": "m"}),
                               ("DELETE", f"/rules/{rule['id']}", None)]:
        answer = omnidesk.api(method, path, token=bo["token"], json=body)
        assert answer.status_code == 403, (method, path, answer.text)
    assert omnidesk.http.get("/api/v1/rules").status_code == 401
    assert [r["name"] for r in omnidesk.ok("GET", "/rules")["items"]] == ["Refunds"]


def test_a_rule_tags_what_arrives_and_agents_tag_and_filter(omnidesk: Running, callback: CallbackServer) -> None:
    omnidesk.ok("POST", "/rules", json=REFUNDS)
    channel_id, secret = omnidesk.api_channel(callback.url)
    for n, text in enumerate(["I want a refund for order 1182", "Where is my parcel?"]):
        payload = {"message_id": f"m-{n}", "from": {"id": f"c-{n}", "name": "Marta"}, "text": text}
        assert omnidesk.post_inbound(channel_id, secret, payload).status_code == 202
    def routed() -> list[Any] | None:  # the automations set a language on both
        items = omnidesk.ok("GET", "/conversations")["items"]
        return items if len(items) == 2 and all(i["language"] for i in items) else None

    by_text = {i["preview"]: i for i in wait_for(routed, what="both routed")}
    refund, parcel = by_text["I want a refund for order 1182"], by_text["Where is my parcel?"]
    assert refund["tags"] == ["refund"] and refund["priority"] == 1 and refund["language"] == "en"
    assert parcel["tags"] == [] and parcel["priority"] == 0
    # A person may set "low" (-1) too, as rules do; nothing below it.
    assert omnidesk.ok("PATCH", f"/conversations/{parcel['id']}", json={"priority": -1})["priority"] == -1
    assert omnidesk.api("PATCH", f"/conversations/{parcel['id']}", json={"priority": -2}).status_code == 422

    assert [i["id"] for i in omnidesk.ok("GET", "/conversations?tag=refund")["items"]] == [refund["id"]]
    tagged = omnidesk.ok("POST", f"/conversations/{parcel['id']}/tags", json={"tag": "late delivery"})
    assert tagged["tags"] == ["late delivery"]
    assert omnidesk.ok("POST", f"/conversations/{parcel['id']}/tags", json={"tag": "late delivery"})["tags"] == [
        "late delivery"]  # once
    assert omnidesk.api("POST", f"/conversations/{parcel['id']}/tags", json={"tag": ""}).status_code == 422
    assert [i["id"] for i in omnidesk.ok("GET", "/conversations?tag=late delivery")["items"]] == [parcel["id"]]
    assert omnidesk.ok("GET", "/conversations?tag=nothing")["items"] == []

    untagged = omnidesk.ok("DELETE", f"/conversations/{refund['id']}/tags/refund")
    assert untagged["tags"] == []
    assert omnidesk.api("DELETE", f"/conversations/{refund['id']}/tags/refund").status_code == 404
    assert omnidesk.ok("GET", "/conversations?tag=refund")["items"] == []
    assert omnidesk.api("POST", "/conversations/987654/tags", json={"tag": "x"}).status_code == 404
    for bad in ("a\x00b", "x" * 51):  # never reach the database (PostgreSQL refuses NUL in text)
        assert omnidesk.api("GET", "/conversations", params={"tag": bad}).status_code == 422
        assert omnidesk.api("DELETE", f"/conversations/{refund['id']}/tags/{quote(bad)}").status_code == 422
        assert omnidesk.api("POST", f"/conversations/{refund['id']}/tags", json={"tag": bad}).status_code == 422


def test_an_agent_tags_only_what_they_may_see(omnidesk: Running, callback: CallbackServer) -> None:
    team = omnidesk.ok("POST", "/teams", json={"name": "VIP"})
    omnidesk.ok("POST", "/rules", json={"name": "VIP", "actions": [{"type": "set_team", "team_id": team["id"]}]})
    channel_id, secret = omnidesk.api_channel(callback.url)
    payload = {"message_id": "m-1", "from": {"id": "c-1"}, "text": "Hello there, my order is late"}
    assert omnidesk.post_inbound(channel_id, secret, payload).status_code == 202
    [conv] = wait_for(lambda: [i for i in omnidesk.ok("GET", "/conversations")["items"] if i["team_id"]],
                      what="the rule's team set")
    outsider = omnidesk.agent("Out", online=False)
    answer = omnidesk.api("POST", f"/conversations/{conv['id']}/tags", token=outsider["token"], json={"tag": "x"})
    assert answer.status_code == 404
    assert omnidesk.ok("GET", f"/conversations/{conv['id']}")["tags"] == []


def test_admins_set_contact_attributes_that_rules_read(omnidesk: Running, callback: CallbackServer) -> None:
    omnidesk.ok("POST", "/rules", json={"name": "Gold", "conditions": [
        {"type": "contact", "attribute": "tier", "equals": "gold"}], "actions": [{"type": "add_tag", "value": "gold"}]})
    channel_id, secret = omnidesk.api_channel(callback.url)
    payload = {"message_id": "m-1", "from": {"id": "c-1", "name": "Vera"}, "text": "Hello, where is my order?"}
    assert omnidesk.post_inbound(channel_id, secret, payload).status_code == 202
    [conv] = wait_for(lambda: [i for i in omnidesk.ok("GET", "/conversations")["items"] if i["language"]],
                      what="routed")
    assert conv["tags"] == []
    contact_id = conv["contact"]["id"]
    assert omnidesk.ok("GET", f"/contacts/{contact_id}")["attributes"] == {}

    body = {"attributes": {"tier": "Gold", "orders": 12, "b2b": False}}
    assert omnidesk.ok("PUT", f"/contacts/{contact_id}/attributes", json=body) == {"contact_id": contact_id, **body}
    assert omnidesk.ok("GET", f"/contacts/{contact_id}")["attributes"] == body["attributes"]
    for bad, reason in [({"attributes": {"email": "x@y.example"}}, "the contact's own fields"),
                        ({"attributes": {"tier": {"nested": 1}}}, "tier"),
                        ({"attributes": {"": 1}}, "attributes"),
                        ({"attributes": {f"k{n}": n for n in range(51)}}, "attributes")]:
        answer = omnidesk.api("PUT", f"/contacts/{contact_id}/attributes", json=bad)
        assert answer.status_code == 422 and reason in answer.json()["detail"], answer.text
    assert omnidesk.api("PUT", "/contacts/987654/attributes", json=body).status_code == 404
    agent = omnidesk.agent("Al", online=False)
    assert omnidesk.api("PUT", f"/contacts/{contact_id}/attributes", token=agent["token"], json=body).status_code == 403

    payload = {"message_id": "m-2", "from": {"id": "c-1"}, "text": "Any news about my order?"}
    assert omnidesk.post_inbound(channel_id, secret, payload).status_code == 202
    wait_for(lambda: omnidesk.ok("GET", f"/conversations/{conv['id']}")["tags"] == ["gold"], what="the rule's tag")
    omnidesk.ok("PUT", f"/contacts/{contact_id}/attributes", json={"attributes": {}})
    assert omnidesk.ok("GET", f"/contacts/{contact_id}")["attributes"] == {}
