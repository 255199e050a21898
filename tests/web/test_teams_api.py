"""Teams as the admin pages change them: rename (409 on a taken name), delete (memberships go
with it; refused while conversations belong to the team, since that would change who sees
them), 404 for no such team, and agents refused. The channel kinds this server knows are listed
in the OpenAPI description, for the admin page's kind menu."""

from __future__ import annotations

from sqlalchemy import update

from store.sql import conversations
from tests.support import CallbackServer, Running, wait_for


def test_rename_and_delete_a_team(omnidesk: Running, callback: CallbackServer) -> None:
    sales = omnidesk.ok("POST", "/teams", json={"name": "Sales"})
    support = omnidesk.ok("POST", "/teams", json={"name": "Support"})
    ana = omnidesk.agent("Ana", online=False, teams=[sales["id"], support["id"]])

    renamed = omnidesk.ok("PATCH", f"/teams/{sales['id']}", json={"name": "Vendes"})
    assert (renamed["id"], renamed["name"], renamed["policy"], renamed["hours"]) == (sales["id"], "Vendes", "least_loaded", None)
    names = {t["id"]: t["name"] for t in omnidesk.ok("GET", "/teams")["items"]}
    assert names[sales["id"]] == "Vendes" and names[support["id"]] == "Support"
    taken = omnidesk.api("PATCH", f"/teams/{sales['id']}", json={"name": "Support"})
    assert taken.status_code == 409 and "exists" in taken.json()["detail"]
    assert omnidesk.ok("PATCH", f"/teams/{sales['id']}", json={"name": "Vendes"})["name"] == "Vendes"  # its own name
    assert omnidesk.api("PATCH", f"/teams/{sales['id']}", json={"name": ""}).status_code == 422

    # A team with a conversation is kept; without, it goes, and with it the agents' memberships.
    channel_id, secret = omnidesk.api_channel(callback.url)
    payload = {"message_id": "m-1", "from": {"id": "c-1", "name": "Marta"}, "text": "hola"}
    assert omnidesk.post_inbound(channel_id, secret, payload).status_code == 202
    wait_for(lambda: omnidesk.ok("GET", "/conversations")["items"])
    with omnidesk.engine.begin() as conn:
        conn.execute(update(conversations).values(team_id=support["id"]))
    refused = omnidesk.api("DELETE", f"/teams/{support['id']}")
    assert refused.status_code == 409 and "1 conversations" in refused.json()["detail"]
    assert support["id"] in omnidesk.ok("GET", f"/agents/{ana['id']}")["teams"]

    assert omnidesk.api("DELETE", f"/teams/{sales['id']}").status_code == 204
    assert sales["id"] not in {t["id"] for t in omnidesk.ok("GET", "/teams")["items"]}
    assert omnidesk.ok("GET", f"/agents/{ana['id']}")["teams"] == [support["id"]]
    assert omnidesk.api("DELETE", f"/teams/{sales['id']}").status_code == 404
    assert omnidesk.api("PATCH", f"/teams/{sales['id']}", json={"name": "X"}).status_code == 404
    assert omnidesk.api("PATCH", "/teams/99999999999", json={"name": "X"}).status_code == 422


def test_agents_may_not_change_teams(omnidesk: Running) -> None:
    team = omnidesk.ok("POST", "/teams", json={"name": "Returns"})
    bo = omnidesk.agent("Bo", online=False)
    for method, body in [("PATCH", {"name": "Mine now"}), ("DELETE", None)]:
        answer = omnidesk.api(method, f"/teams/{team['id']}", token=bo["token"], json=body)
        assert answer.status_code == 403, answer.text
    assert [t["name"] for t in omnidesk.ok("GET", "/teams")["items"]] == ["Returns"]


def test_openapi_lists_the_known_channel_kinds(omnidesk: Running) -> None:
    kind = omnidesk.http.get("/openapi.json").json()["components"]["schemas"]["ChannelIn"]["properties"]["kind"]
    # (Other tests may register a kind of their own while the schema is first built: not == REGISTRY.)
    assert {"api", "email", "sms", "whatsapp", "telegram", "twitter"} <= set(kind["enum"])
    assert kind["enum"] == sorted(kind["enum"])
    unknown = omnidesk.api("POST", "/channels", json={"kind": "pigeon", "name": "x", "config": {}})
    assert unknown.status_code == 422 and "unknown channel kind" in unknown.json()["detail"]
