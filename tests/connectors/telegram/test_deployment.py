"""Telegram as deployed (``web``, ``scheduler`` and ``worker`` processes on PostgreSQL and Redis,
tests/deployment.py): polling with the poller killed by SIGKILL mid-batch, and webhooks, each ending
with an agent's reply received by the stand-in in the customer's chat."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select

from store.db import normalise_url
from store.sql import messages
from tests import support
from tests.deployment import Deployment
from tests.fakes.telegram import FakeTelegram

CHATS, PER_CHAT = 30, 10


def customer_update(chat: int, n: int) -> dict[str, Any]:
    return {"message": {"message_id": n, "date": 1764374400 + n, "text": f"missatge {n} de {chat}: ¿dónde está? ł",
                        "from": {"id": chat, "is_bot": False, "first_name": f"Client {chat}"},
                        "chat": {"id": chat, "first_name": f"Client {chat}", "type": "private"}}}


def stored(database_url: str) -> list[tuple[str, str]]:
    engine = create_engine(normalise_url(database_url))
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(select(messages.c.external_id, messages.c.text)
                                                   .where(messages.c.direction == "in"))]
    finally:
        engine.dispose()


def reply_reaches_the_chat(desk: Deployment, fake: FakeTelegram, token: str, chat: int) -> None:
    page = desk.ok("GET", "/conversations", params={"limit": 200})["items"]
    conversation = next(c for c in page if c["contact"]["name"] == f"Client {chat}")
    desk.ok("POST", f"/conversations/{conversation['id']}/messages", json={"text": f"Resposta per {chat}"})
    support.wait_for(lambda: any(s["chat_id"] == chat for s in fake.bots[token].sent), timeout=30,
                     what="the reply at the stand-in")
    assert [s["text"] for s in fake.bots[token].sent if s["chat_id"] == chat] == [f"Resposta per {chat}"]


def test_a_poller_killed_mid_batch_resumes_without_loss_or_doubles(pg_url: str, tmp_path: Path,
                                                                   fake: FakeTelegram) -> None:
    token = fake.add_bot()
    with Deployment(pg_url, tmp_path) as desk:
        killed = threading.Event()

        def kill_once(bot: Any, updates: list[dict[str, Any]]) -> None:
            # The worker has the batch and is storing it: kill it before it can commit.
            if not killed.is_set():
                killed.set()
                desk.kill_worker()

        fake.after_updates = kill_once
        sent = {}
        for n in range(PER_CHAT):
            for chat in range(1, CHATS + 1):
                fake.push(token, customer_update(1000 + chat, n))
                sent[f"{1000 + chat}:{n}"] = customer_update(1000 + chat, n)["message"]["text"]
        channel = desk.ok("POST", "/channels", json={"kind": "telegram", "name": "bot", "config": {
            "bot_token": token, "api_base_url": fake.url, "long_poll_timeout": 2}})
        assert channel["config"]["mode"] == "polling"
        support.wait_for(killed.is_set, timeout=30, what="the first batch polled")
        assert stored(pg_url) == []  # killed before its commit
        desk.start_worker()
        # The dead poller's lease (60 s) runs out; the next one reads the same offset again.
        support.wait_for(lambda: len(stored(pg_url)) >= len(sent), timeout=120, interval=0.5,
                         what="every update stored")
        rows = stored(pg_url)
        assert Counter(e for e, _ in rows).most_common(1)[0][1] == 1  # none twice
        assert dict(rows) == sent  # none lost, each intact
        support.wait_for(lambda: fake.pending(token) == 0, timeout=30, what="every update confirmed")
        reply_reaches_the_chat(desk, fake, token, 1007)


def test_webhooks_as_deployed(pg_url: str, tmp_path: Path, fake: FakeTelegram) -> None:
    token = fake.add_bot()
    with Deployment(pg_url, tmp_path) as desk:
        channel = desk.ok("POST", "/channels", json={"kind": "telegram", "name": "bot", "config": {
            "bot_token": token, "api_base_url": fake.url, "mode": "webhook"}})
        assert fake.bots[token].webhook_url == channel["webhook_url"]
        sent = {}
        for chat in range(1, 6):
            update_id = fake.push(token, customer_update(2000 + chat, 1))
            sent[f"{2000 + chat}:1"] = customer_update(2000 + chat, 1)["message"]["text"]
        fake.redeliver(token, {"update_id": update_id, **customer_update(2005, 1)})
        support.wait_for(lambda: fake.pending(token) == 0 and len(stored(pg_url)) == len(sent), timeout=30,
                         what="every update delivered")
        assert sorted(stored(pg_url)) == sorted(sent.items())
        reply_reaches_the_chat(desk, fake, token, 2003)
