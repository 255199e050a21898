"""GET /api/v1/search through the real server: contacts then messages, each with its conversation
as the list shows it; an agent of one team never finds another team's conversation; paging; bad
input answers 422."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import CallbackServer, Running

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])  # behaviour above the database


def _inbound(running: Running, channel: tuple[int, str], n: str, text: str, **sender: str) -> dict[str, Any]:
    payload = {"message_id": f"m-{n}", "from": {"id": f"cust-{n}", **sender}, "text": text}
    assert running.post_inbound(*channel, payload).status_code == 202
    return next(i for i in running.ok("GET", "/conversations")["items"] if i["contact"]["name"] == sender["name"])


def _search(running: Running, q: str, token: str | None = None, **params: Any) -> dict[str, Any]:
    return running.ok("GET", "/search", token=token, params={"q": q, **params})


def test_teams_find_only_their_conversations(omnidesk: Running, callback: CallbackServer) -> None:
    team_a = omnidesk.ok("POST", "/teams", json={"name": "A"})["id"]
    team_b = omnidesk.ok("POST", "/teams", json={"name": "B"})["id"]
    ana = omnidesk.agent("Ana", online=False, teams=[team_a])
    bo = omnidesk.agent("Bo", online=False, teams=[team_b])
    channel = omnidesk.api_channel(callback.url)
    first = _inbound(omnidesk, channel, "1", "My blender arrived broken", name="Łucja Brzęczyszczykiewicz",
                     email="lucja@example.pl", phone="+48 601 222 333")
    second = _inbound(omnidesk, channel, "2", "The blender lid is missing", name="Çelik Aydın",
                      email="celik@example.tr")
    omnidesk.ok("PATCH", f"/conversations/{first['id']}", json={"team_id": team_a})
    omnidesk.ok("PATCH", f"/conversations/{second['id']}", json={"team_id": team_b})
    note = omnidesk.ok("POST", f"/conversations/{first['id']}/messages", token=ana["token"],
                       json={"text": "Łucja will send photos of the blender", "private": True})

    admin = _search(omnidesk, "blender")
    assert [(i["conversation"]["id"], i["message"]["id"] if i["message"] else None) for i in admin["items"]] == [
        (first["id"], note["id"]), (second["id"], admin["items"][1]["message"]["id"]),
        (first["id"], admin["items"][2]["message"]["id"])]
    assert admin["items"][0]["message"]["snippet"] == "Łucja will send photos of the blender"
    listed = {i["id"]: i for i in omnidesk.ok("GET", "/conversations")["items"]}
    assert [i["conversation"] for i in admin["items"]] == [listed[first["id"]], listed[second["id"]],
                                                            listed[first["id"]]]  # as the list shows them
    for_ana = _search(omnidesk, "blender", ana["token"])["items"]
    assert {i["conversation"]["id"] for i in for_ana} == {first["id"]} and len(for_ana) == 2
    assert {i["conversation"]["id"] for i in _search(omnidesk, "blender", bo["token"])["items"]} == {second["id"]}

    # Contacts by name (accents and all), email, phone; each with the conversation.
    lucja = {"id": first["contact"]["id"], "name": "Łucja Brzęczyszczykiewicz", "email": "lucja@example.pl",
             "phone": "+48 601 222 333", "unreachable_reason": None}
    for q in ("łucja", "brzęczysz", "lucja@example.pl", "601 222", "48601222333"):
        items = _search(omnidesk, q, ana["token"])["items"]
        assert items[0]["contact"] == lucja and items[0]["message"] is None, q
        assert items[0]["conversation"]["id"] == first["id"]
        assert _search(omnidesk, q, bo["token"])["items"] == [], q  # Bo may not see Łucja's conversation
    assert [i["contact"]["id"] for i in _search(omnidesk, "çelik", bo["token"])["items"]] == [second["contact"]["id"]]
    assert _search(omnidesk, "çelik", ana["token"]) == {"items": [], "next": None}


@SQLITE_ONLY
def test_pages_run_through_contacts_then_messages(omnidesk: Running, callback: CallbackServer) -> None:
    channel = omnidesk.api_channel(callback.url)
    for n in range(5):
        _inbound(omnidesk, channel, str(n), f"question {n} about the warranty", name=f"Warranty Person {n}")
    seen: list[tuple[str, int]] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = _search(omnidesk, "warranty", **params)
        pages += 1
        seen += [("contact", i["contact"]["id"]) if i["contact"] else ("message", i["message"]["id"])
                 for i in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == 4  # 5 contacts and 5 messages, 3 a page
    contacts, messages = seen[:5], seen[5:]
    assert {k for k, _ in contacts} == {"contact"} and {k for k, _ in messages} == {"message"}
    assert [i for _, i in contacts] == sorted((i for _, i in contacts), reverse=True)
    assert [i for _, i in messages] == sorted((i for _, i in messages), reverse=True) and len(set(seen)) == 10
    # A page exactly full of contacts points at the messages.
    five = _search(omnidesk, "warranty", limit=5)
    assert [i["contact"] is not None for i in five["items"]] == [True] * 5 and five["next"] == "m"
    assert _search(omnidesk, "person", limit=5)["next"] is None  # no message says "person"


@SQLITE_ONLY
def test_bad_input_answers_422_and_odd_input_finds_nothing(omnidesk: Running, callback: CallbackServer) -> None:
    channel = omnidesk.api_channel(callback.url)
    _inbound(omnidesk, channel, "1", "hello", name="Someone")
    for params in ({"q": "x" * 10_000}, {"q": ""}, {}, {"q": "x", "cursor": "z1"}, {"q": "x", "cursor": "c-1"},
                   {"q": "x", "cursor": "m99999999999"}, {"q": "x", "limit": 0}, {"q": "x", "limit": 1000}):
        answer = omnidesk.api("GET", "/search", params=params)
        assert answer.status_code == 422 and answer.json()["detail"], params
    for q in ('"', "'; --", "a & | ! b", "x\x00", "NEAR(", "*", "hello:*"):
        answer = omnidesk.api("GET", "/search", params={"q": q})
        assert answer.status_code == 200, (q, answer.text)
    assert omnidesk.api("GET", "/search", token="nope", params={"q": "x"}).status_code == 401
