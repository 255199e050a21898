"""The web chat widget's endpoints through the real server (SQLite and PostgreSQL + Redis): origin
checks and CORS, visitor tokens and identity verification, messages stored once by their browser
id, limits, the visitor's own stream (only their conversation's public events, resumable), read
receipts, typing both ways, and the fallback email once the visitor has left."""

from __future__ import annotations

import base64
import contextlib
import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.webchat import identity_hash, read_token, visitor_token
from connectors.errors import AuthError
from store import visitors
from store.agents import create_agent, set_presence
from store.channels import create_channel
from store.db import get_engine
from tests.support import Running, running_omnidesk

SHOP = "http://shop.example"
SECRET = "identity-secret-0123456789"


@pytest.fixture
def desk(backend: str, database_url: str, tmp_path: Path) -> Iterator[Running]:
    with running_omnidesk(backend, database_url, tmp_path, OMNIDESK_EVENTS_PING="1",
                          OMNIDESK_WEBCHAT_LEFT_AFTER="2") as running:
        yield running


def _channel(**config: Any) -> int:
    return create_channel(get_engine(), "webchat", "chat", {"allowed_origins": [SHOP], "identity_secret": SECRET,
                                                             **config})


def _client(running: Running, origin: str = SHOP) -> httpx.Client:
    return httpx.Client(base_url=running.url, headers={"Origin": origin}, timeout=10)


def _session(client: httpx.Client, channel: int, **body: Any) -> dict[str, Any]:
    answer = client.post(f"/webchat/{channel}/session", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _send(client: httpx.Client, channel: int, token: str, mid: str, text: str, **more: Any) -> httpx.Response:
    return client.post(f"/webchat/{channel}/messages", headers={"X-Omnidesk-Visitor": token},
                       json={"id": mid, "text": text, **more})


class Stream:
    def __init__(self, running: Running, channel: int, token: str, origin: str = SHOP, after: int | None = None) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.status: int | None = None
        self.last: int | None = None
        opened = threading.Event()
        query = f"?token={token}" + (f"&after={after}" if after is not None else "")

        def run() -> None:
            with contextlib.suppress(httpx.HTTPError), \
                    httpx.Client(base_url=running.url, timeout=httpx.Timeout(10, read=None)) as c, \
                    c.stream("GET", f"/webchat/{channel}/events{query}", headers={"Origin": origin}) as r:
                self.status = r.status_code
                opened.set()
                for line in r.iter_lines():
                    if line.startswith("id:"):
                        self.last = int(line[3:])
                    if line.startswith("data:"):
                        self.events.put(json.loads(line[5:]))
        threading.Thread(target=run, daemon=True).start()
        assert opened.wait(10)

    def until(self, check: Any, timeout: float = 10) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                event = self.events.get(timeout=0.2)
            except queue.Empty:
                continue
            if check(event):
                return event
        raise AssertionError("no such event")

    def drain(self, seconds: float = 1.0) -> list[dict[str, Any]]:
        time.sleep(seconds)
        found = []
        while not self.events.empty():
            found.append(self.events.get())
        return found


def test_tokens_are_signed_per_channel() -> None:
    token = visitor_token("k", 3, "v:abc")
    assert read_token("k", 3, token) == "v:abc"
    for bad in (token.replace(".", ".x"), token + "x", "", "a.b"):
        with pytest.raises(AuthError):
            read_token("k", 3, bad)
    with pytest.raises(AuthError):
        read_token("k", 4, token)
    with pytest.raises(AuthError):
        read_token("other", 3, token)
    with pytest.raises(AuthError):
        read_token("k", 3, visitor_token("k", 3, "v:abc", now=time.time() - 400 * 86400))


def test_origins_cors_and_tokens(desk: Running) -> None:
    channel = _channel()
    with _client(desk) as shop, _client(desk, "http://evil.example") as evil:
        pre = shop.options(f"/webchat/{channel}/messages", headers={"Access-Control-Request-Method": "POST"})
        assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == SHOP
        refused = evil.options(f"/webchat/{channel}/messages", headers={"Access-Control-Request-Method": "POST"})
        assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
        assert evil.post(f"/webchat/{channel}/session", json={}).status_code == 403
        assert httpx.post(f"{desk.url}/webchat/{channel}/session", json={}).status_code == 403  # no Origin
        session = _session(shop, channel)
        assert session["verified"] is False and session["someone_there"] is False
        assert evil.get(f"/webchat/{channel}/messages", headers={"X-Omnidesk-Visitor": session["token"]}).status_code == 403
        assert Stream(desk, channel, session["token"], origin="http://evil.example").status == 403
        assert shop.get(f"/webchat/{channel}/messages", headers={"X-Omnidesk-Visitor": "forged.token"}).status_code == 401
        assert shop.post("/webchat/999999/session", json={}).status_code == 404
        again = _session(shop, channel, token=session["token"])
        assert again["token"] == session["token"] or read_token_of(again) == read_token_of(session)


def read_token_of(session: dict[str, Any]) -> str:
    body = session["token"].split(".")[0]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["v"]


def _contact_of_conversation(conversation_id: int) -> int:
    from sqlalchemy import select

    from store.sql import conversations

    with get_engine().connect() as conn:
        return conn.execute(select(conversations.c.contact_id).where(conversations.c.id == conversation_id)).scalar_one()


def test_identity_is_verified_and_joins_the_contact(desk: Running) -> None:
    from connectors.base import Identity, InboundMessage
    from workers import ingest

    channel = _channel()
    api = create_channel(get_engine(), "api", "api", {"secret": "s" * 20, "callback_url": "http://127.0.0.1:9/"})
    before = ingest(api, [InboundMessage(external_id="e1", sender=Identity("cust-42", email="marta@example.com"),
                                         text="order?", thread_key="t1")])[0]
    with _client(desk) as shop:
        forged = shop.post(f"/webchat/{channel}/session",
                           json={"identity": {"id": "42", "email": "marta@example.com", "hash": "0" * 64}})
        assert forged.status_code == 401
        other = shop.post(f"/webchat/{channel}/session",  # signed, but for another customer id
                          json={"identity": {"id": "43", "email": "marta@example.com", "hash": identity_hash(SECRET, "42")}})
        assert other.status_code == 401
        assert shop.post(f"/webchat/{channel}/session", json={"identity": {"id": "42", "hash": ""}}).status_code == 422
        good = _session(shop, channel, identity={"id": "42", "email": "marta@example.com", "name": "Marta",
                                                  "hash": identity_hash(SECRET, "42")})
        assert good["verified"] is True
        assert _send(shop, channel, good["token"], "id-verified-1", "hola").status_code == 202
    [conversation] = visitors.conversation_ids(get_engine(), channel, "u:42")
    assert _contact_of_conversation(conversation) == _contact_of_conversation(before.conversation_id)
    no_secret = create_channel(get_engine(), "webchat", "plain", {"allowed_origins": [SHOP]})
    with _client(desk) as shop:
        refused = shop.post(f"/webchat/{no_secret}/session", json={"identity": {"id": "42", "hash": identity_hash(SECRET, "42")}})
        assert refused.status_code == 401


def test_messages_are_stored_once_and_only_the_visitors_own_public_events_stream(desk: Running) -> None:
    channel = _channel(max_attachment_bytes=1000)
    engine = get_engine()
    agent_id, agent_token = create_agent(engine, name="Ana Puig", email="ana@x.test", presence="online")
    auth = {"Authorization": f"Bearer {desk.admin_token}"}
    with _client(desk) as shop:
        me, other = _session(shop, channel), _session(shop, channel)
        stream = Stream(desk, channel, me["token"])
        first = _send(shop, channel, me["token"], "client-id-0001", "hello 👋")
        assert first.status_code == 202 and first.json()["duplicate"] is False
        again = _send(shop, channel, me["token"], "client-id-0001", "hello 👋")
        assert again.json() == {"message_id": first.json()["message_id"], "duplicate": True}
        assert _send(shop, channel, other["token"], "client-id-0002", "someone else").status_code == 202
        for bad in ({"id": "x", "text": "short id"}, {"id": "client-id-0003", "text": ""},
                    {"id": "client-id-0004", "text": "f", "files": [{"filename": "a.exe", "content_type": "application/x-msdownload",
                                                                     "data": base64.b64encode(b"MZ").decode()}]},
                    {"id": "client-id-0005", "text": "f", "files": [{"filename": "big.png", "content_type": "image/png",
                                                                     "data": base64.b64encode(b"x" * 2000).decode()}]},
                    {"id": "client-id-0006", "text": "x" * 5001}):
            answer = shop.post(f"/webchat/{channel}/messages", headers={"X-Omnidesk-Visitor": me["token"]}, json=bad)
            assert answer.status_code == 422, (bad["id"], answer.text)
        image = {"filename": "p.png", "content_type": "image/png", "data": base64.b64encode(b"\x89PNG....").decode()}
        assert _send(shop, channel, me["token"], "client-id-0007", "a photo", files=[image]).status_code == 202
        created = stream.until(lambda e: e["type"] == "message.created")
        mine = created["conversation_id"]
        httpx.post(f"{desk.url}/api/v1/conversations/{mine}/messages", headers=auth, json={"text": "a note", "private": True})
        reply = httpx.post(f"{desk.url}/api/v1/conversations/{mine}/messages", headers=auth, json={"text": "Hi, <b>how</b>?"})
        assert reply.status_code == 202, reply.text
        httpx.post(f"{desk.url}/api/v1/conversations/{mine}/typing", headers=auth)
        seen = stream.drain(2.0)
        assert {e["conversation_id"] for e in seen} == {mine}
        assert all(e["type"] in ("message.created", "message.status", "agent.typing", "conversation.read") for e in seen)
        assert any(e["type"] == "agent.typing" for e in seen)
        items = shop.get(f"/webchat/{channel}/messages", headers={"X-Omnidesk-Visitor": me["token"]}).json()["items"]
        assert [(m["direction"], m["text"]) for m in items] == [("in", "hello 👋"), ("in", "a photo"), ("out", "Hi, <b>how</b>?")]
        assert items[2]["agent"] == "admin" or items[2]["agent"]  # the agent's first name
        [photo] = items[1]["files"]
        got = httpx.get(f"{desk.url}/webchat/{channel}/files/{photo['id']}?token={me['token']}")
        assert got.status_code == 200 and got.content == b"\x89PNG...."
        assert httpx.get(f"{desk.url}/webchat/{channel}/files/{photo['id']}?token={other['token']}").status_code == 404
        # read receipts: the reply moves to read; typing reaches the agents
        assert shop.post(f"/webchat/{channel}/read", headers={"X-Omnidesk-Visitor": me["token"]},
                         json={"up_to": items[2]["id"]}).json() == {"read": [items[2]["id"]]}
        status = stream.until(lambda e: e["type"] == "message.status" and e.get("status") == "read")
        assert status["message_id"] == items[2]["id"]
        assert shop.post(f"/webchat/{channel}/typing", headers={"X-Omnidesk-Visitor": me["token"]}).status_code == 204
        # resuming after the last id seen gives what came since, and nothing of before
        last = stream.last
        assert _send(shop, channel, me["token"], "client-id-0008", "after the drop").status_code == 202
        resumed = Stream(desk, channel, me["token"], after=last)
        assert resumed.until(lambda e: e["type"] == "message.created")["direction"] == "in"
    _ = agent_id, agent_token


def test_rate_limits(backend: str, database_url: str, tmp_path: Path) -> None:
    with running_omnidesk(backend, database_url, tmp_path, scheduler=False, OMNIDESK_WEBCHAT_VISITOR_RATE="3") as desk:
        channel = _channel()
        with _client(desk) as shop:
            token = _session(shop, channel)["token"]
            codes = [_send(shop, channel, token, f"client-rate-{n:04}", "hi").status_code for n in range(5)]
            assert codes[:3] == [202] * 3 and codes[3:] == [429, 429]
            assert int(_send(shop, channel, token, "client-rate-0009", "hi").headers["retry-after"]) >= 1


def test_someone_there_follows_online_agents(desk: Running) -> None:
    from router.availability import someone_there
    from store.sla import set_config

    assert someone_there([frozenset({1})], None) and someone_there([frozenset({1})], 1)
    assert not someone_there([frozenset({2}), frozenset()], 1) and not someone_there([], None)
    assert not someone_there([frozenset({1})], None, open_=False)
    channel = _channel()
    agent_id, _ = create_agent(get_engine(), name="Jan", email="jan@x.test", presence="offline")
    with _client(desk) as shop:
        assert _session(shop, channel)["someone_there"] is False
        set_presence(get_engine(), agent_id, "online")
        assert _session(shop, channel)["someone_there"] is True
        # Outside the shop's business hours nobody is there, whoever is online.
        set_config(get_engine(), "hours", {"timezone": "Europe/Madrid", "week": {}})
        try:
            assert _session(shop, channel)["someone_there"] is False
        finally:
            set_config(get_engine(), "hours", None)


def test_a_reply_the_visitor_left_without_reading_goes_by_email(backend: str, database_url: str, tmp_path: Path,
                                                                 smtp_sink: Any) -> None:
    with running_omnidesk(backend, database_url, tmp_path, scheduler=False, OMNIDESK_WEBCHAT_LEFT_AFTER="1",
                          OMNIDESK_EVENTS_PING="1") as desk:
        mail = create_channel(get_engine(), "email", "mail", {
            "address": "shop@example.com", "imap_host": "127.0.0.1", "imap_password": "x", **smtp_sink.settings()})
        channel = _channel(fallback_email_channel_id=mail)
        auth = {"Authorization": f"Bearer {desk.admin_token}"}
        with _client(desk) as shop:
            token = _session(shop, channel)["token"]
            assert shop.post(f"/webchat/{channel}/email", headers={"X-Omnidesk-Visitor": token},
                             json={"email": "not an email"}).status_code == 422
            assert shop.post(f"/webchat/{channel}/email", headers={"X-Omnidesk-Visitor": token},
                             json={"email": "visitor@example.com"}).status_code == 204
            assert _send(shop, channel, token, "client-left-01", "anyone?").status_code == 202
        visitor = read_token("test-secret-key", channel, token)
        [conversation] = visitors.conversation_ids(get_engine(), channel, visitor)
        time.sleep(1.5)  # no stream was ever open: gone
        httpx.post(f"{desk.url}/api/v1/conversations/{conversation}/messages", headers=auth, json={"text": "Back now!"})
        [received] = smtp_sink.wait_for(1, timeout=20)
        assert received.rcpt_tos == ["visitor@example.com"] and "Back now!" in received.raw.decode()
        shown = httpx.get(f"{desk.url}/api/v1/conversations/{conversation}", headers=auth).json()
        texts = [m["text"] for m in shown["messages"] if m["direction"] == "out"]
        assert texts == ["Back now!", "Back now!"]  # the chat message and the email


def test_the_demo_shop_page_embeds_the_demo_chat(desk: Running) -> None:
    from fastapi.testclient import TestClient

    from store.demo import add_demo
    from web.app import create_app

    assert httpx.get(f"{desk.url}/demo/shop").status_code == 404  # not in production
    said: list[str] = []
    add_demo(get_engine(), said.append)
    add_demo(get_engine(), said.append)  # a second start: the same channel
    assert sum("/demo/shop" in line for line in said) == 1  # later starts: with the logins (cli_startup)
    with TestClient(create_app(demo=True)) as demo:
        page = demo.get("/demo/shop")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    from sqlalchemy import select

    from store.sql import channels
    with get_engine().connect() as conn:
        [channel] = conn.execute(select(channels.c.id).where(channels.c.kind == "webchat")).scalars().all()
    assert f'<script src="/widget.js" data-channel="{channel}" async>' in page.text
    with _client(desk, "http://127.0.0.1:8000") as shop:
        assert _session(shop, channel)["greeting"]
    widget = httpx.get(f"{desk.url}/widget.js")
    assert widget.status_code == 200 and widget.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in widget.text and "style=" not in widget.text  # text only; no style attributes
