"""The inbox's API through the real server on both databases: the views and their counts, unread
and read markers, previews, the contact panel across channels (404 for a contact the caller sees
nothing of), canned responses (admins write, agents read them rendered), and an open event stream
that stops showing a conversation once an admin takes the agent off its team."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from store.sql import conversations
from tests.support import CallbackServer, Running, wait_for
from tests.web.test_events import Subscriber, _has


def _inbound(running: Running, channel: tuple[int, str], n: str, who: str, text: str = "hi", **extra: Any) -> None:
    payload = {"message_id": f"m-{n}", "from": {"id": who, "name": f"Customer {who}", "email": f"{who}@example.com"},
               "text": text, "thread": f"t-{n}", **extra}
    assert running.post_inbound(*channel, payload).status_code == 202


def _conversations(running: Running, token: str | None = None, query: str = "") -> dict[int, dict[str, Any]]:
    return {i["id"]: i for i in running.ok("GET", f"/conversations{query}", token=token)["items"]}


def _routed(running: Running) -> bool:
    with running.engine.connect() as conn:
        return conn.execute(select(conversations.c.id).where(conversations.c.needs_routing.is_(True))).first() is None


def test_views_counts_unread_and_read(omnidesk: Running, callback: CallbackServer) -> None:
    channel = omnidesk.api_channel(callback.url)
    ana = omnidesk.agent("Ana", online=False)
    joan = omnidesk.agent("Joan", online=False)
    _inbound(omnidesk, channel, "1", "c1", text="Hola! " + "molt " * 60)
    _inbound(omnidesk, channel, "2", "c2")
    _inbound(omnidesk, channel, "3", "c3")
    wait_for(lambda: len(_conversations(omnidesk)) == 3 and _routed(omnidesk), what="three conversations")
    first, second, third = sorted(_conversations(omnidesk))
    omnidesk.ok("POST", f"/conversations/{first}/assign", json={"agent_id": ana["id"]})
    omnidesk.ok("POST", f"/conversations/{second}/assign", json={"agent_id": joan["id"]})

    mine = _conversations(omnidesk, ana["token"], "?view=mine")
    assert list(mine) == [first]
    item = mine[first]
    assert item["unread"] == 1 and item["channel_kind"] == "api" and item["reply_window_ends_at"] is None
    assert item["preview"] == ("Hola! " + "molt " * 60)[:140] and item["waiting_since"] is not None
    assert list(_conversations(omnidesk, ana["token"], "?view=unassigned")) == [third]
    assert sorted(_conversations(omnidesk, ana["token"])) == [first, third]  # not Joan's
    assert sorted(_conversations(omnidesk, query="?view=all")) == [first, second, third]  # the admin
    assert omnidesk.ok("GET", "/conversations/counts", token=ana["token"]) == {
        "mine": 1, "unassigned": 1, "all": 2, "unread": 2}

    live = Subscriber(omnidesk, ana["token"])
    other_tab = Subscriber(omnidesk, joan["token"])
    read = omnidesk.ok("POST", f"/conversations/{first}/read", token=ana["token"])
    assert read["conversation_id"] == first and read["last_read_message_id"] is not None
    got = live.events_until(_has("conversation.read", conversation_id=first))
    assert [d for _, d in got if d and d["type"] == "conversation.read"][0]["agent_id"] == ana["id"]
    assert _conversations(omnidesk, ana["token"])[first]["unread"] == 0
    assert omnidesk.ok("GET", f"/conversations/{first}", token=ana["token"])["unread"] == 0
    assert omnidesk.ok("GET", "/conversations/counts", token=ana["token"])["unread"] == 1
    assert _conversations(omnidesk)[first]["unread"] == 1  # the admin has not read it

    # A later customer message is unread again; Joan never got Ana's read event.
    _inbound(omnidesk, channel, "4", "c1", thread="t-1")
    wait_for(lambda: _conversations(omnidesk, ana["token"])[first]["unread"] == 1, what="unread again")
    omnidesk.ok("POST", f"/conversations/{second}/read", token=joan["token"])
    seen = other_tab.events_until(_has("conversation.read", conversation_id=second))
    assert not any(d and d["type"] == "conversation.read" and d["agent_id"] == ana["id"] for _, d in seen)
    live.close()
    other_tab.close()

    assert omnidesk.api("POST", f"/conversations/{second}/read", token=ana["token"]).status_code == 404
    assert omnidesk.api("GET", "/conversations?view=some", token=ana["token"]).status_code == 422


def test_contact_panel_across_channels(omnidesk: Running, callback: CallbackServer) -> None:
    shop = omnidesk.api_channel(callback.url)
    other = omnidesk.api_channel(callback.url)
    sales = omnidesk.ok("POST", "/teams", json={"name": "Sales"})["id"]
    ana = omnidesk.agent("Ana", online=False)
    joan = omnidesk.agent("Joan", online=False)
    _inbound(omnidesk, shop, "a", "marta")
    _inbound(omnidesk, other, "b", "marta")  # the same email: one contact on two channels
    _inbound(omnidesk, shop, "c", "pere")
    wait_for(lambda: len(_conversations(omnidesk)) == 3 and _routed(omnidesk), what="three conversations")
    items = _conversations(omnidesk)
    marta = [i for i in items.values() if i["contact"]["name"] == "Customer marta"]
    assert len({i["contact"]["id"] for i in marta}) == 1
    contact_id = marta[0]["contact"]["id"]
    older, newer = sorted(i["id"] for i in marta)
    omnidesk.ok("PATCH", f"/conversations/{older}", json={"team_id": sales})

    panel = omnidesk.ok("GET", f"/contacts/{contact_id}")
    assert panel["email"] == "marta@example.com" and panel["name"] == "Customer marta"
    assert sorted(i["channel_id"] for i in panel["identities"]) == sorted([shop[0], other[0]])
    assert {i["channel_kind"] for i in panel["identities"]} == {"api"}
    assert [c["id"] for c in panel["conversations"]] == [newer, older]
    assert panel["conversations"][0]["unread"] == 1

    # Ana sees the shared queue's conversation only; after Joan takes it, nothing: 404, as for no contact.
    assert [c["id"] for c in omnidesk.ok("GET", f"/contacts/{contact_id}", token=ana["token"])["conversations"]] \
        == [newer]
    omnidesk.ok("POST", f"/conversations/{newer}/assign", json={"agent_id": joan["id"]})
    hidden = omnidesk.api("GET", f"/contacts/{contact_id}", token=ana["token"])
    missing = omnidesk.api("GET", "/contacts/999999", token=ana["token"])
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == {"detail": f"no contact {contact_id}"}
    assert omnidesk.api("GET", "/contacts/0").status_code == 422


def test_canned_responses(omnidesk: Running, callback: CallbackServer) -> None:
    channel = omnidesk.api_channel(callback.url)
    ana = omnidesk.agent("Ana Puig", online=False)
    _inbound(omnidesk, channel, "1", "marta")
    conv = wait_for(lambda: list(_conversations(omnidesk)), what="the conversation")[0]
    body = {"shortcut": "hi", "title": "Greeting", "text": "Hola {{contact.first_name}}, soc {{agent.first_name}} "
            "(#{{conversation.number}}) {{order.id}}"}

    refused = omnidesk.api("POST", "/canned-responses", token=ana["token"], json=body)
    assert refused.status_code == 403 and refused.json() == {"detail": "this needs an admin"}
    made = omnidesk.ok("POST", "/canned-responses", json=body)
    assert omnidesk.api("POST", "/canned-responses", json=body).status_code == 409
    assert omnidesk.api("POST", "/canned-responses", json={**body, "shortcut": "two words"}).status_code == 422
    assert omnidesk.api("PATCH", f"/canned-responses/{made['id']}", token=ana["token"],
                        json={"title": "x"}).status_code == 403
    assert omnidesk.api("DELETE", f"/canned-responses/{made['id']}", token=ana["token"]).status_code == 403

    listed = omnidesk.ok("GET", f"/canned-responses?conversation_id={conv}&q=greet", token=ana["token"])["items"]
    assert [i["shortcut"] for i in listed] == ["hi"]
    assert listed[0]["rendered"] == f"Hola Customer, soc Ana (#{conv}) {{{{order.id}}}}"
    assert omnidesk.ok("GET", "/canned-responses", token=ana["token"])["items"][0]["rendered"] is None
    assert omnidesk.ok("GET", "/canned-responses?q=nothing-like-it", token=ana["token"])["items"] == []

    other = omnidesk.ok("POST", "/canned-responses", json={**body, "shortcut": "bye"})
    assert omnidesk.api("PATCH", f"/canned-responses/{other['id']}", json={"shortcut": "hi"}).status_code == 409
    assert omnidesk.ok("PATCH", f"/canned-responses/{other['id']}", json={"text": "Adeu"})["text"] == "Adeu"
    assert omnidesk.api("DELETE", f"/canned-responses/{other['id']}").status_code == 204
    assert omnidesk.api("DELETE", f"/canned-responses/{other['id']}").status_code == 404

    # Rendering for a conversation the caller may not see answers 404, as the conversation does.
    joan = omnidesk.agent("Joan", online=False)
    omnidesk.ok("POST", f"/conversations/{conv}/assign", json={"agent_id": joan["id"]})
    assert omnidesk.api("GET", f"/canned-responses?conversation_id={conv}", token=ana["token"]).status_code == 404


def test_an_open_stream_follows_a_team_change(omnidesk: Running, callback: CallbackServer) -> None:
    channel = omnidesk.api_channel(callback.url)
    sales = omnidesk.ok("POST", "/teams", json={"name": "Sales"})["id"]
    ana = omnidesk.agent("Ana", online=False, teams=[sales])
    _inbound(omnidesk, channel, "1", "marta")
    conv = wait_for(lambda: list(_conversations(omnidesk)), what="the conversation")[0]
    omnidesk.ok("PATCH", f"/conversations/{conv}", json={"team_id": sales})
    live = Subscriber(omnidesk, ana["token"])  # opened while Ana is on the team
    omnidesk.ok("PATCH", f"/conversations/{conv}", json={"priority": 3})
    live.events_until(_has("conversation.updated", conversation_id=conv, priority=3))

    omnidesk.ok("PATCH", f"/agents/{ana['id']}", json={"teams": []})
    omnidesk.ok("PATCH", f"/conversations/{conv}", json={"priority": 4})
    _inbound(omnidesk, channel, "2", "marta", thread="t-1")
    omnidesk.ok("PUT", f"/agents/{ana['id']}/presence", json={"status": "away"})  # an event she does see
    got = live.events_until(_has("agent.presence", agent_id=ana["id"], presence="away"))
    assert not any(d and d.get("conversation_id") == conv for _, d in got), got
    assert omnidesk.api("GET", f"/conversations/{conv}", token=ana["token"]).status_code == 404
    live.close()
