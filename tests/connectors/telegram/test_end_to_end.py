"""Telegram end to end on both deployments of this process (SQLite with the in-process broker,
PostgreSQL with Redis): a customer writes to the bot, the message lands in a conversation, an
agent answers, and the stand-in Bot API receives the answer in the customer's chat; by webhook and
by long polling, a bot switched between them, and Telegram's refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from store.sql import messages
from tests.fakes.telegram import FakeTelegram
from tests.support import Running, wait_for

FIXTURES = Path(__file__).parent / "fixtures"
CHAT = 511234567


def update(name: str, **changes: Any) -> dict[str, Any]:
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    data.pop("update_id")
    for kind in ("message", "edited_message"):
        if kind in data:
            data[kind].update(changes)
    return data


def telegram_channel(desk: Running, fake: FakeTelegram, token: str, **config: Any) -> dict[str, Any]:
    return desk.ok("POST", "/channels", json={"kind": "telegram", "name": "Shop bot", "config": {
        "bot_token": token, "api_base_url": fake.url, "long_poll_timeout": 1, **config}})


def inbound(desk: Running) -> list[Any]:
    with desk.engine.connect() as conn:
        return conn.execute(select(messages.c.external_id, messages.c.text, messages.c.conversation_id)
                            .where(messages.c.direction == "in").order_by(messages.c.id)).all()


def conversation_of(desk: Running, external_id: str) -> int:
    row = wait_for(lambda: next((r for r in inbound(desk) if r.external_id == external_id), None),
                   what=f"message {external_id} stored")
    return row.conversation_id


def answer(desk: Running, conversation_id: int, text: str) -> int:
    return desk.ok("POST", f"/conversations/{conversation_id}/messages", json={"text": text})["id"]


def status(desk: Running, conversation_id: int, message_id: int) -> dict[str, Any]:
    detail = desk.ok("GET", f"/conversations/{conversation_id}")
    return next(m for m in detail["messages"] if m["id"] == message_id)


def settled(desk: Running, conversation_id: int, message_id: int, *, timeout: float = 20) -> dict[str, Any]:
    return wait_for(lambda: (m := status(desk, conversation_id, message_id))["status"] in ("sent", "failed") and m,
                    timeout=timeout, what=f"reply {message_id} settled")


def test_polling_in_and_reply_out_edits_and_button_presses(omnidesk: Running, fake: FakeTelegram) -> None:
    token = fake.add_bot("botiga_bot", "Botiga Núria")
    channel = telegram_channel(omnidesk, fake, token)
    assert channel["config"]["mode"] == "polling"  # the public URL here is http: polling is the default
    assert channel["config"]["bot_name"] == "Botiga Núria" and channel["config"]["bot_username"] == "botiga_bot"
    assert "webhook_secret" not in channel["config"] and "bot_token" not in channel["config"]
    assert set(channel["secrets_set"]) == {"bot_token", "webhook_secret"}
    assert fake.bots[token].calls["deleteWebhook"] == 1

    fake.push(token, update("text"))
    conversation = conversation_of(omnidesk, f"{CHAT}:1042")
    detail = omnidesk.ok("GET", f"/conversations/{conversation}")
    assert detail["contact"]["name"] == "Marta Puig"
    assert detail["messages"][0]["text"] == "Hola! On és la meva comanda #1234?"

    reply = answer(omnidesk, conversation, "Surt demà amb el transportista.")
    assert settled(omnidesk, conversation, reply)["status"] == "sent"
    [sent] = fake.bots[token].sent
    assert (sent["chat_id"], sent["text"]) == (CHAT, "Surt demà amb el transportista.")

    fake.push(token, update("edited_message"))
    edited = wait_for(lambda: (m := omnidesk.ok("GET", f"/conversations/{conversation}")["messages"][0])["edited_at"]
                      and m, what="the edit shown")
    assert edited["text"] == "Hola! On és la meva comanda #1235?"
    assert [e["text"] for e in edited["edits"]] == ["Hola! On és la meva comanda #1234?"]

    fake.push(token, update("callback_query"))
    assert conversation_of(omnidesk, "callback:2195618309487395843") == conversation
    wait_for(lambda: fake.bots[token].answered == ["2195618309487395843"], what="the button press answered")
    assert [r.text for r in inbound(omnidesk)] == ["Hola! On és la meva comanda #1235?", "pressed: useful:yes"]
    wait_for(lambda: omnidesk.ok("GET", f"/channels/{channel['id']}")["status"] == "ok", what="channel ok")


def test_webhook_mode_checks_the_secret_token_and_stores_a_redelivered_update_once(
        omnidesk: Running, fake: FakeTelegram) -> None:
    token = fake.add_bot()
    channel = telegram_channel(omnidesk, fake, token, mode="webhook")
    bot = fake.bots[token]
    assert bot.webhook_url == channel["webhook_url"] and len(bot.secret_token) >= 32

    update_id = fake.push(token, update("photo"))
    conversation = conversation_of(omnidesk, f"{CHAT}:1043")
    fake.redeliver(token, {"update_id": update_id, **update("photo")})
    wait_for(lambda: len(bot.webhook_answers) == 2 and fake.pending(token) == 0, what="the second delivery")
    assert bot.webhook_answers == [202, 202]
    assert [r.external_id for r in inbound(omnidesk)] == [f"{CHAT}:1043"]

    body = json.dumps({"update_id": 1, **update("text")}).encode()
    for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "not-the-secret"},
                    {"X-Telegram-Bot-Api-Secret-Token": bot.secret_token + "x"}):
        refused = httpx.post(channel["webhook_url"], content=body, headers=headers)
        assert refused.status_code == 403, refused.text
    assert len(inbound(omnidesk)) == 1

    fake.push(token, update("callback_query"))  # answered in the webhook's own response
    wait_for(lambda: bot.answered == ["2195618309487395843"], what="the button press answered")
    reply = answer(omnidesk, conversation, "Ens sap greu! Us n'enviem una altra.")
    assert settled(omnidesk, conversation, reply)["status"] == "sent"
    assert [(s["chat_id"], s["text"]) for s in bot.sent] == [(CHAT, "Ens sap greu! Us n'enviem una altra.")]


def test_a_bot_switched_between_modes_loses_nothing(omnidesk: Running, fake: FakeTelegram) -> None:
    token = fake.add_bot()
    channel = telegram_channel(omnidesk, fake, token)
    bot = fake.bots[token]
    fake.push(token, update("text", message_id=1))
    conversation_of(omnidesk, f"{CHAT}:1")

    omnidesk.ok("PATCH", f"/channels/{channel['id']}", json={"config": {"mode": "webhook"}})
    assert bot.webhook_url == channel["webhook_url"]
    fake.push(token, update("text", message_id=2))
    conversation_of(omnidesk, f"{CHAT}:2")
    # Stored while the webhook's answer was on its way: the stand-in notes the answer once it has it.
    wait_for(lambda: 202 in bot.webhook_answers, what="the webhook's answer")

    back = omnidesk.ok("PATCH", f"/channels/{channel['id']}", json={"config": {"mode": "polling"}})
    assert back["config"]["mode"] == "polling" and bot.webhook_url == ""
    fake.push(token, update("text", message_id=3))
    conversation_of(omnidesk, f"{CHAT}:3")
    assert [r.external_id for r in inbound(omnidesk)] == [f"{CHAT}:1", f"{CHAT}:2", f"{CHAT}:3"]
    assert len({r.conversation_id for r in inbound(omnidesk)}) == 1


def test_flood_control_is_waited_out_and_a_blocked_customer_fails_the_reply(
        omnidesk: Running, fake: FakeTelegram) -> None:
    token = fake.add_bot()
    telegram_channel(omnidesk, fake, token, mode="webhook")
    fake.push(token, update("text"))
    conversation = conversation_of(omnidesk, f"{CHAT}:1042")
    first = answer(omnidesk, conversation, "one")
    assert settled(omnidesk, conversation, first)["status"] == "sent"
    fake.flood_next = 1  # Telegram's flood control refuses the second reply at first
    second = answer(omnidesk, conversation, "two")
    assert settled(omnidesk, conversation, second, timeout=30)["status"] == "sent"
    assert fake.too_many == 1
    assert sorted(s["text"] for s in fake.bots[token].sent) == ["one", "two"]  # each once

    fake.block(token, CHAT)
    blocked = answer(omnidesk, conversation, "three")
    failed = settled(omnidesk, conversation, blocked)
    assert failed["status"] == "failed"
    assert "blocked" in failed["status_reason"]
    assert len(fake.bots[token].sent) == 2


def test_a_wrong_token_is_refused_with_its_reason(omnidesk: Running, fake: FakeTelegram) -> None:
    refused = omnidesk.api("POST", "/channels", json={"kind": "telegram", "name": "bot", "config": {
        "bot_token": "7000009999:AAH-revoked", "api_base_url": fake.url}})
    assert refused.status_code == 422
    assert "refused the bot token" in refused.json()["detail"]
    with omnidesk.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(messages)).scalar_one() == 0
    assert omnidesk.ok("GET", "/channels")["items"] == []


def test_a_long_reply_refused_halfway_is_finished_without_sending_a_part_twice(
        omnidesk: Running, fake: FakeTelegram) -> None:
    token = fake.add_bot()
    telegram_channel(omnidesk, fake, token, mode="webhook")
    fake.push(token, update("text"))
    conversation = conversation_of(omnidesk, f"{CHAT}:1042")
    fake.chat_gap = 2.5  # the second part comes a second after the first: flood control refuses it
    text = "\n".join(f"Línia {n}: el vostre paquet surt demà del magatzem de Badalona." for n in range(120))
    assert len(text) > 4096
    reply = answer(omnidesk, conversation, text)
    done = settled(omnidesk, conversation, reply, timeout=40)
    assert done["status"] == "sent"
    sent = fake.bots[token].sent
    assert len(sent) == 2 and fake.too_many >= 1
    assert "\n".join(s["text"] for s in sent) == text  # each part once, in order, nothing lost
    with omnidesk.engine.connect() as conn:
        external_id = conn.execute(select(messages.c.external_id).where(messages.c.id == reply)).scalar_one()
    assert external_id == f"{CHAT}:{sent[0]['message_id']}+{sent[1]['message_id']}"


def test_a_webhook_set_elsewhere_is_explained_and_saving_in_polling_mode_removes_it(
        omnidesk: Running, fake: FakeTelegram) -> None:
    token = fake.add_bot()
    channel = telegram_channel(omnidesk, fake, token)
    fake.bots[token].webhook_url = "http://127.0.0.1:9/another-program"  # another program took the bot
    fake.push(token, update("text"))
    shown = wait_for(lambda: (c := omnidesk.ok("GET", f"/channels/{channel['id']}"))["status"] == "error" and c,
                     timeout=30, what="the channel in error")
    assert "409 Conflict" in shown["last_error"] and "webhook" in shown["last_error"]
    assert inbound(omnidesk) == []
    omnidesk.ok("PATCH", f"/channels/{channel['id']}", json={"config": {"mode": "polling"}})
    assert fake.bots[token].webhook_url == ""
    conversation_of(omnidesk, f"{CHAT}:1042")
    wait_for(lambda: omnidesk.ok("GET", f"/channels/{channel['id']}")["status"] == "ok", what="the channel ok")


def test_deleting_a_webhook_channel_removes_its_webhook_or_says_it_could_not(
        omnidesk: Running, fake: FakeTelegram) -> None:
    token = fake.add_bot()
    channel = telegram_channel(omnidesk, fake, token, mode="webhook")
    bot = fake.bots[token]
    assert bot.webhook_url == channel["webhook_url"]
    gone = omnidesk.api("DELETE", f"/channels/{channel['id']}")
    assert gone.status_code == 204 and bot.webhook_url == "" and bot.calls["deleteWebhook"] == 1
    assert omnidesk.api("GET", f"/channels/{channel['id']}").status_code == 404

    again = telegram_channel(omnidesk, fake, token, mode="webhook")
    bot.refuse["deleteWebhook"] = (401, "Unauthorized")  # the token was revoked meanwhile
    warned = omnidesk.api("DELETE", f"/channels/{again['id']}")
    assert warned.status_code == 200, warned.text
    body = warned.json()
    assert body["id"] == again["id"] and body["deleted"] is True
    assert body["warning"].startswith("the channel is deleted, but removing its webhook at the provider failed: "
                                      "Telegram refused the bot token")
    assert omnidesk.api("GET", f"/channels/{again['id']}").status_code == 404  # deleted all the same
    assert bot.webhook_url == again["webhook_url"]
