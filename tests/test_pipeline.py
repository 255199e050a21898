"""End to end on both deployments: API-channel inbound -> stored -> assigned -> reply -> delivered."""

from __future__ import annotations

import hashlib
import hmac
import json

from sqlalchemy import func, select

from store.sql import conversations, messages
from tests.support import CallbackServer, Running, wait_for


def _count(running: Running, table) -> int:  # type: ignore[no-untyped-def]
    with running.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_message_travels_in_and_reply_goes_out(omnidesk: Running, callback: CallbackServer) -> None:
    agent = omnidesk.agent("Ana Puig", capacity=3)
    channel_id, secret = omnidesk.api_channel(callback.url)
    payload = {"message_id": "order-form-1", "from": {"id": "cust-42", "name": "Marta Vidal",
               "email": "marta@example.com"}, "text": "Hola! On és la meva comanda #5512?"}

    first = omnidesk.post_inbound(channel_id, secret, payload)
    assert first.status_code == 202, first.text
    assert first.json() == {"stored": 1, "duplicates": 0}

    def assigned() -> dict | None:
        items = omnidesk.ok("GET", "/conversations")["items"]
        return items[0] if items and items[0]["assignee_id"] else None

    conv = wait_for(assigned, what="the conversation to be assigned")
    assert conv["assignee_id"] == agent["id"]
    assert conv["contact"]["name"] == "Marta Vidal"
    assert conv["waiting_since"] is not None

    reply = omnidesk.ok("POST", f"/conversations/{conv['id']}/messages", token=agent["token"],
                        json={"text": "Surt demà amb el transportista."})
    assert reply["status"] == "pending"
    wait_for(lambda: callback.requests, what="the reply at the shop's callback")
    headers, body = callback.requests[0]
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-omnidesk-signature"] == expected
    sent = json.loads(body)
    assert sent["text"] == "Surt demà amb el transportista."
    assert sent["to"] == {"id": "cust-42"}
    assert sent["conversation_number"] == conv["number"]
    assert sent["message_id"] == str(reply["id"])

    detail = wait_for(lambda: (d := omnidesk.ok("GET", f"/conversations/{conv['id']}"))["messages"][-1]["status"]
                      == "delivered" and d, what="the reply marked delivered")
    assert [m["direction"] for m in detail["messages"]] == ["in", "out"]
    assert detail["messages"][0]["text"] == payload["text"]
    assert detail["first_response_at"] is not None and detail["waiting_since"] is None
    assert detail["contact"]["email"] == "marta@example.com"


def test_redelivered_inbound_is_stored_once(omnidesk: Running, callback: CallbackServer) -> None:
    channel_id, secret = omnidesk.api_channel(callback.url)
    payload = {"message_id": "dup-1", "from": {"id": "c1"}, "text": "same message, three deliveries"}
    answers = [omnidesk.post_inbound(channel_id, secret, payload) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert [a.json()["stored"] for a in answers] == [1, 0, 0]
    assert _count(omnidesk, messages) == 1
    assert _count(omnidesk, conversations) == 1


def test_bad_signature_is_refused_and_nothing_stored(omnidesk: Running, callback: CallbackServer) -> None:
    channel_id, secret = omnidesk.api_channel(callback.url)
    payload = {"message_id": "x1", "from": {"id": "c1"}, "text": "forged"}
    forged = omnidesk.post_inbound(channel_id, secret, payload, signature="sha256=" + "0" * 64)
    assert forged.status_code == 401
    wrong_key = omnidesk.post_inbound(channel_id, "another-secret-entirely", payload)
    assert wrong_key.status_code == 401
    missing = omnidesk.http.post(f"/webhooks/{channel_id}", content=json.dumps(payload))
    assert missing.status_code == 401
    assert "signature" in missing.json()["detail"].lower()
    assert _count(omnidesk, messages) == 0


def test_malformed_payloads_get_clear_400s(omnidesk: Running, callback: CallbackServer) -> None:
    channel_id, secret = omnidesk.api_channel(callback.url)
    from connectors.api import sign

    for body, fragment in [
        (b"not json", "JSON"),
        (json.dumps({"from": {"id": "c"}, "text": "no id"}).encode(), "message_id"),
        (json.dumps({"message_id": "m", "text": "no sender"}).encode(), "from"),
        (json.dumps({"message_id": "m", "from": {"id": "c"}, "text": "x" * 100_001}).encode(), "text"),
    ]:
        answer = omnidesk.http.post(f"/webhooks/{channel_id}", content=body,
                                    headers={"X-Omnidesk-Signature": sign(secret, body)})
        assert answer.status_code == 400, answer.text
        assert fragment in answer.json()["detail"]
    assert omnidesk.http.post("/webhooks/999", content=b"{}").status_code == 404
    assert _count(omnidesk, messages) == 0


def test_thread_key_keeps_one_conversation_and_replies_thread(omnidesk: Running, callback: CallbackServer) -> None:
    channel_id, secret = omnidesk.api_channel(callback.url)
    for n in range(3):
        omnidesk.post_inbound(channel_id, secret, {"message_id": f"t{n}", "from": {"id": "c9"},
                                                   "thread": "ticket-abc", "text": f"part {n}"})
    omnidesk.post_inbound(channel_id, secret, {"message_id": "other", "from": {"id": "c9"},
                                               "thread": "ticket-def", "text": "another matter"})
    items = omnidesk.ok("GET", "/conversations")["items"]
    assert len(items) == 2
    by_count = sorted(len(omnidesk.ok("GET", f"/conversations/{i['id']}")["messages"]) for i in items)
    assert by_count == [1, 3]


def test_concurrent_posts_are_stored_together_and_answered_each(omnidesk: Running, callback: CallbackServer) -> None:
    """Requests arriving at once are stored in shared transactions (web.intake): each still gets
    its own answer - stored, duplicate, refused - and nothing is lost or doubled."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    omnidesk.agent("Quim Serra", capacity=100)
    channel_id, secret = omnidesk.api_channel(callback.url)
    other_id, other_secret = omnidesk.api_channel(callback.url)
    posts = []
    for n in range(60):
        posts.append((channel_id, secret, {"message_id": f"m{n}", "from": {"id": f"c{n % 20}"}, "text": f"hi {n}"}))
    posts += [(channel_id, secret, {"message_id": f"m{n}", "from": {"id": f"c{n % 20}"}, "text": f"hi {n}"})
              for n in range(0, 60, 6)]  # redelivered while the first copies are in flight
    posts += [(other_id, other_secret, {"message_id": f"o{n}", "from": {"id": "same"}, "text": "x"}) for n in range(5)]
    forged = [(channel_id, "not-the-secret-at-all", {"message_id": "forged", "from": {"id": "c1"}, "text": "x"})]
    broken = [(channel_id, secret, {"message_id": "broken", "text": "no sender"})]
    everything = posts + forged + broken

    def post(item: tuple[int, str, dict]) -> httpx.Response:
        with httpx.Client(base_url=omnidesk.url, timeout=30) as client:
            from connectors.api import sign

            body = json.dumps(item[2]).encode()
            signed = {"X-Omnidesk-Signature": sign(item[1], body)}
            return client.post(f"/webhooks/{item[0]}", content=body, headers=signed)

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(post, everything))
    assert [a.status_code for a in answers[:len(posts)]] == [202] * len(posts)
    assert answers[-2].status_code == 401 and answers[-1].status_code == 400
    assert "from" in answers[-1].json()["detail"]
    m_answers = [a.json() for a in answers[:70]]
    stored = {}
    for item, answer in zip(everything[:70], m_answers, strict=True):
        assert answer["stored"] + answer["duplicates"] == 1
        stored[item[2]["message_id"]] = stored.get(item[2]["message_id"], 0) + answer["stored"]
    assert set(stored.values()) == {1}  # each message stored by exactly one of its deliveries
    with omnidesk.engine.connect() as conn:
        rows = conn.execute(select(messages.c.channel_id, messages.c.external_id, messages.c.text)).all()
        convs = conn.execute(select(conversations.c.channel_id, conversations.c.thread_key)).all()
    assert sorted(r.external_id for r in rows if r.channel_id == channel_id) == sorted(f"m{n}" for n in range(60))
    assert {r.text for r in rows if r.external_id == "m7"} == {"hi 7"}
    assert sum(1 for r in rows if r.channel_id == other_id) == 5
    assert sorted(c.thread_key for c in convs if c.channel_id == channel_id) == sorted(f"from:c{n}" for n in range(20))
    assert [c.thread_key for c in convs if c.channel_id == other_id] == ["from:same"]
    wait_for(lambda: _count_assigned(omnidesk) == 21, what="all 21 conversations assigned")


def _count_assigned(running: Running) -> int:
    with running.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(conversations)
                            .where(conversations.c.assignee_id.is_not(None))).scalar_one()


def test_the_webhook_edges_on_the_plain_asgi_path(omnidesk: Running, callback: CallbackServer) -> None:
    """Webhook posts skip the framework (web.asgi): its edges still answer as the API does."""
    channel_id, secret = omnidesk.api_channel(callback.url)
    from connectors.api import sign

    big = b"x" * (5 * 1024 * 1024 + 1)
    answer = omnidesk.http.post(f"/webhooks/{channel_id}", content=big, headers={"X-Omnidesk-Signature": "x"})
    assert answer.status_code == 413 and answer.json() == {"detail": "body too large"}

    # A body sent in chunks (no Content-Length) and a query string: read whole, verified, stored.
    body = json.dumps({"message_id": "chunked-1", "from": {"id": "c9"}, "text": "in pieces"}).encode()
    answer = omnidesk.http.post(f"/webhooks/{channel_id}?source=form&x=", content=iter([body[:10], body[10:]]),
                                headers={"X-Omnidesk-Signature": sign(secret, body)})
    assert answer.status_code == 202, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"stored": 1, "duplicates": 0}

    # A GET of /webhooks/<number> is a provider's challenge, the connector's to answer: the API
    # channel has none and checks the signature first. Other methods and paths are the framework's.
    assert omnidesk.http.get(f"/webhooks/{channel_id}").status_code == 401
    assert omnidesk.http.put(f"/webhooks/{channel_id}", content=b"{}").status_code == 405
    assert omnidesk.http.post("/webhooks/not-a-number", content=b"{}").status_code == 422
    assert omnidesk.http.post(f"/webhooks/{channel_id}/", content=b"{}").status_code in (307, 404)
    schema = omnidesk.http.get("/openapi.json").json()
    assert "/webhooks/{channel_id}" in schema["paths"]
    assert _count(omnidesk, messages) == 1
