"""The visibility rule through the API: an agent reads, replies to, takes, assigns, retries and
downloads only what they may see; what they may not see answers exactly like a missing id."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from store.sql import attachments, messages
from tests.support import CallbackServer, Running, wait_for

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])  # behaviour above the database


def _conversation(running: Running, channel: tuple[int, str], n: str) -> dict:  # type: ignore[type-arg]
    payload = {"message_id": f"m-{n}", "from": {"id": f"cust-{n}", "name": f"Customer {n}"}, "text": f"hi {n}"}
    assert running.post_inbound(*channel, payload).status_code == 202
    items = running.ok("GET", "/conversations")["items"]
    return next(i for i in items if i["contact"]["name"] == f"Customer {n}")


@SQLITE_ONLY
def test_an_agent_without_a_team_cannot_touch_a_colleagues_conversation(
        omnidesk: Running, callback: CallbackServer) -> None:
    ana = omnidesk.agent("Ana", online=False)  # no team
    biel = omnidesk.agent("Biel", online=False)
    channel = omnidesk.api_channel(callback.url)
    theirs, queue = _conversation(omnidesk, channel, "1"), _conversation(omnidesk, channel, "2")
    omnidesk.ok("POST", f"/conversations/{theirs['id']}/assign", json={"agent_id": biel["id"]})

    # Biel's reply fails for good (the shop answers 400): a failed message Ana must not retry.
    callback.answers.append(400)
    failed = omnidesk.ok("POST", f"/conversations/{theirs['id']}/messages", token=biel["token"], json={"text": "x"})
    wait_for(lambda: omnidesk.ok("GET", f"/conversations/{theirs['id']}")["messages"][-1]["status"] == "failed",
             what="the reply to fail")
    with omnidesk.engine.begin() as conn:
        inbound = conn.execute(select(messages.c.id).where(messages.c.conversation_id == theirs["id"],
                                                           messages.c.direction == "in")).scalar_one()
        file_id = conn.execute(attachments.insert().values(
            message_id=inbound, filename="invoice.pdf", content_type="application/pdf", size=3, inline=False,
            data=b"pdf").returning(attachments.c.id)).scalar_one()

    listed = {i["id"] for i in omnidesk.ok("GET", "/conversations", token=ana["token"])["items"]}
    assert listed == {queue["id"]}
    missing = theirs["id"] + 1000
    for method, path, body in [("GET", "", None), ("POST", "/messages", {"text": "x"}),
                               ("POST", "/assign", {"agent_id": ana["id"]}), ("POST", "/resolve", None),
                               ("POST", "/reopen", None), ("PATCH", "", {"priority": 1})]:
        for conversation_id in (theirs["id"], missing):
            answer = omnidesk.api(method, f"/conversations/{conversation_id}{path}", token=ana["token"], json=body)
            assert (answer.status_code, answer.json()) == (404, {"detail": f"no conversation {conversation_id}"}), \
                (method, path)
    for path, kind, found in [("/messages/{}/retry", "message", failed["id"]),
                              ("/attachments/{}", "attachment", file_id)]:
        method = "POST" if "retry" in path else "GET"
        for some_id in (found, found + 1000):
            answer = omnidesk.api(method, path.format(some_id), token=ana["token"])
            assert (answer.status_code, answer.json()) == (404, {"detail": f"no {kind} {some_id}"}), path
    assert omnidesk.ok("GET", f"/conversations/{theirs['id']}")["assignee_id"] == biel["id"]  # untouched

    # Biel sees his own; the retry and download work for him.
    assert omnidesk.ok("POST", f"/messages/{failed['id']}/retry", token=biel["token"])["status"] == "pending"
    assert omnidesk.api("GET", f"/attachments/{file_id}", token=biel["token"]).content == b"pdf"

    # The shared queue is Ana's to take; once she hands it to Biel it is no longer hers to see.
    taken = omnidesk.ok("POST", f"/conversations/{queue['id']}/assign", token=ana["token"],
                        json={"agent_id": ana["id"]})
    assert taken["assignee_id"] == ana["id"]
    handed = omnidesk.ok("POST", f"/conversations/{queue['id']}/assign", token=ana["token"],
                         json={"agent_id": biel["id"]})
    assert handed["assignee_id"] == biel["id"]
    assert omnidesk.api("GET", f"/conversations/{queue['id']}", token=ana["token"]).status_code == 404


@SQLITE_ONLY
def test_a_deactivated_agent_cannot_be_given_conversations(omnidesk: Running, callback: CallbackServer) -> None:
    eve = omnidesk.agent("Eve", online=False)
    channel = omnidesk.api_channel(callback.url)
    conv = _conversation(omnidesk, channel, "1")
    omnidesk.ok("PATCH", f"/agents/{eve['id']}", json={"active": False})
    refused = omnidesk.api("POST", f"/conversations/{conv['id']}/assign", json={"agent_id": eve["id"]})
    assert refused.status_code == 404 and str(eve["id"]) in refused.json()["detail"]
    assert omnidesk.ok("GET", f"/conversations/{conv['id']}")["assignee_id"] is None
    assert omnidesk.ok("GET", f"/agents/{eve['id']}")["active_conversations"] == 0
