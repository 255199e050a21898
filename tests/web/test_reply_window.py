"""A reply on a channel with a reply window: accepted within it, refused at once with 422 and a
readable reason past it (nothing stored, nothing sent); a private note is always taken."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from connectors import REGISTRY
from store.db import get_engine
from store.models import utcnow
from store.sql import messages
from tests.support import CallbackServer, Running, wait_for


def test_a_reply_past_the_window_is_refused_with_422(omnidesk: Running, callback: CallbackServer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(REGISTRY, "windowed", "tests.web.windowed:WindowedConnector")
    config = {"secret": "s" * 20, "callback_url": callback.url}
    channel = omnidesk.ok("POST", "/channels", json={"kind": "windowed", "name": "Windowed", "config": config})
    payload = {"message_id": "w-1", "from": {"id": "cust"}, "text": "hello"}
    assert omnidesk.post_inbound(channel["id"], "s" * 20, payload).status_code == 202
    conv = wait_for(lambda: omnidesk.ok("GET", "/conversations")["items"], what="the conversation")[0]
    path = f"/conversations/{conv['id']}/messages"

    assert omnidesk.api("POST", path, json={"text": "within the window"}).status_code == 202
    wait_for(lambda: len(callback.requests) == 1, what="the reply delivered")

    with get_engine().begin() as conn:  # the customer wrote two minutes ago
        conn.execute(update(messages).where(messages.c.direction == "in")
                     .values(created_at=utcnow() - timedelta(minutes=2)))
    late = omnidesk.api("POST", path, json={"text": "too late"})
    assert late.status_code == 422, late.text
    assert "only within 1 minute of the customer's last message" in late.json()["detail"]
    assert omnidesk.api("POST", path, json={"text": "a note", "private": True}).status_code == 202
    texts = [m["text"] for m in omnidesk.ok("GET", f"/conversations/{conv['id']}")["messages"]]
    assert "too late" not in texts and "a note" in texts
    assert len(callback.requests) == 1
