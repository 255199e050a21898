"""The connector against the stand-in Bot API (tests/fakes/telegram.py), through the real
python-telegram-bot: setting up, polling, sending, files, and each error Telegram answers."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Attachment, Identity, InboundMessage, OutboundMessage
from connectors.errors import ConfigError, PermanentError, RecipientUnreachable, TransientError
from connectors.telegram import TelegramConnector
from connectors.telegram.config import TelegramConfig
from connectors.telegram.send import MAX_TEXT, split_text, utf16_len
from tests.fakes.telegram import FakeTelegram

FIXTURES = Path(__file__).parent / "fixtures"
CHAT = 511234567


def connector(fake: FakeTelegram, token: str, **config: Any) -> TelegramConnector:
    return TelegramConnector(TelegramConfig(**{"bot_token": token, "api_base_url": fake.url, "long_poll_timeout": 1,
                                               **config}))


def update(name: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    data.pop("update_id")
    return data


def reply(text: str, *attachments: Attachment, message_id: int = 1, external_id: str | None = None,
          chat: int = CHAT) -> OutboundMessage:
    return OutboundMessage(message_id, 1, 1, Identity(str(chat)), text, attachments=attachments,
                           external_id=external_id)


def test_check_names_the_bot_and_a_wrong_token_says_so(fake: FakeTelegram) -> None:
    token = fake.add_bot("botiga_bot", "Botiga Núria")
    assert connector(fake, token).check() == {"bot_name": "Botiga Núria", "bot_username": "botiga_bot"}
    with pytest.raises(ConfigError, match="refused the bot token") as raised:
        connector(fake, "7000009999:AAH-revoked").check()
    assert raised.value.auth


def test_webhook_setup_sets_or_deletes_the_webhook_by_mode(fake: FakeTelegram) -> None:
    token = fake.add_bot()
    hooked = connector(fake, token, mode="webhook")
    hooked.webhook_setup("http://127.0.0.1:9/webhooks/3")
    bot = fake.bots[token]
    assert bot.webhook_url == "http://127.0.0.1:9/webhooks/3"
    assert bot.secret_token == hooked.config.webhook_secret.get_secret_value()
    connector(fake, token, mode="polling").webhook_setup("http://127.0.0.1:9/webhooks/3")
    assert bot.webhook_url == "" and bot.calls["deleteWebhook"] == 1
    with pytest.raises(ConfigError, match=r"(?i)https url must be provided"):  # as Telegram refuses http
        connector(fake, token, mode="webhook").webhook_setup("http://desk.example/webhooks/3")


def test_polling_confirms_updates_only_when_asked_for_the_next_batch(fake: FakeTelegram) -> None:
    token = fake.add_bot()
    first = fake.push(token, update("text"))
    fake.push(token, update("photo"))
    polls = connector(fake, token).poll(None)
    batch = next(polls)
    assert [e.external_id for e in batch.events] == [f"{CHAT}:1042", f"{CHAT}:1043"]
    assert batch.cursor == {"offset": first + 2}
    assert fake.pending(token) == 2  # not confirmed until the caller stored them and asks again
    assert list(polls) == []  # the next long poll confirms them, then finds nothing within its timeout
    assert fake.pending(token) == 0


def test_polling_from_a_saved_cursor_does_not_see_confirmed_updates_and_a_crash_sees_them_again(
        fake: FakeTelegram) -> None:
    token = fake.add_bot()
    first = fake.push(token, update("text"))
    batch = next(connector(fake, token).poll(None))  # then the poller dies: nothing stored
    again = next(connector(fake, token).poll(None))
    assert again.events == batch.events
    fake.push(token, update("photo"))
    after = next(connector(fake, token).poll({"offset": first + 1}))
    assert [e.external_id for e in after.events] == [f"{CHAT}:1043"]


def test_polling_skips_group_chats_and_unknown_updates_but_moves_past_them(fake: FakeTelegram) -> None:
    token = fake.add_bot()
    fake.push(token, update("group_message"))
    last = fake.push(token, update("unknown_update"))
    batch = next(connector(fake, token).poll(None))
    assert batch.events == () and batch.cursor == {"offset": last + 1}


def test_a_button_press_polled_is_answered_once_its_batch_is_stored(fake: FakeTelegram) -> None:
    token = fake.add_bot()
    fake.push(token, update("callback_query"))
    polls = connector(fake, token).poll(None)
    [event] = next(polls).events
    assert isinstance(event, InboundMessage) and event.text == "pressed: useful:yes"
    assert fake.bots[token].answered == []  # not before the caller resumed (it committed)
    assert list(polls) == []
    assert fake.bots[token].answered == ["2195618309487395843"]


def test_polling_a_bot_with_a_webhook_explains_the_409(fake: FakeTelegram) -> None:
    token = fake.add_bot()
    connector(fake, token, mode="webhook").webhook_setup("http://127.0.0.1:9/webhooks/1")
    with pytest.raises(ConfigError, match="409 Conflict: this bot has a webhook set"):
        next(connector(fake, token).poll(None))


def test_webhook_mode_does_not_poll(fake: FakeTelegram) -> None:
    token = fake.add_bot()
    fake.push(token, update("text"))
    hooked = connector(fake, token, mode="webhook")
    assert list(hooked.poll(None)) == [] and fake.bots[token].calls["getUpdates"] == 0
    assert hooked.poll_interval == 3600.0 and connector(fake, token).poll_interval == 1.0


def test_a_long_reply_goes_in_parts_and_a_retry_sends_only_the_rest(fake: FakeTelegram) -> None:
    token = fake.add_bot()
    text = ("Línia de prova amb accents i emoji \U0001f600.\n" * 250).strip()
    assert utf16_len(text) > 2 * MAX_TEXT
    parts = split_text(text)
    assert len(parts) == 3 and all(utf16_len(p) <= MAX_TEXT for p in parts)
    assert "\n".join(parts) == text  # cut at line breaks, nothing lost
    telegram = connector(fake, token)
    fake.chat_gap = 5.0  # the second part meets flood control
    with pytest.raises(TransientError) as raised:
        telegram.send(reply(text))
    assert raised.value.retry_after == 1 and raised.value.sent is not None
    assert [s["text"] for s in fake.bots[token].sent] == parts[:1]
    fake.chat_gap = 0.9
    result = telegram.send(reply(text, external_id=raised.value.sent))
    sent = fake.bots[token].sent
    assert [s["text"] for s in sent] == parts  # each part once
    assert result.external_id == f"{CHAT}:" + "+".join(str(s["message_id"]) for s in sent)
    assert all(b["at"] - a["at"] >= 0.9 for a, b in itertools.pairwise(sent[1:]))


def test_files_go_as_photos_or_documents(fake: FakeTelegram) -> None:
    token = fake.add_bot()
    connector(fake, token).send(reply("", Attachment("label.png", "image/png", b"\x89PNG..."),
                                      Attachment("invoice.pdf", "application/pdf", b"%PDF-1.4")))
    sent = fake.bots[token].sent
    assert [("photo" in s, s["filename"], s["data"]) for s in sent] == [
        (True, "label.png", b"\x89PNG..."), (False, "invoice.pdf", b"%PDF-1.4")]


def test_telegrams_refusals_become_our_errors(fake: FakeTelegram) -> None:
    token = fake.add_bot()
    telegram = connector(fake, token)
    fake.block(token, 42)
    with pytest.raises(RecipientUnreachable, match=r"(?i)bot was blocked by the user"):
        telegram.send(reply("hello", chat=42))
    telegram.send(reply("first"))
    with pytest.raises(TransientError, match="flood control") as raised:  # a second within the chat's second
        telegram.send(reply("second"))
    assert raised.value.retry_after == 1 and raised.value.sent is None
    with pytest.raises(PermanentError, match="not a Telegram chat id"):
        telegram.send(OutboundMessage(1, 1, 1, Identity("marta"), "hi"))
    unreachable = connector(fake, token, api_base_url="http://127.0.0.1:9", timeout=2)
    with pytest.raises(TransientError, match=r"could not be reached|did not answer"):
        unreachable.send(reply("hello"))
    assert fake.too_many == 1


def test_send_limits_name_the_bot_and_the_chat_and_widen_for_parts(fake: FakeTelegram) -> None:
    telegram = connector(fake, "7000000001:AAH-x")
    bot, chat = telegram.send_limits(reply("short"))
    assert (bot.key, bot.per_second) == ("telegram:bot7000000001", 30.0)
    assert (chat.key, chat.per_second) == (f"telegram:bot7000000001:chat{CHAT}", 1.0)
    bot, chat = telegram.send_limits(reply("x " * 5000))
    assert (bot.per_second, chat.per_second) == (30.0 / 3, 1.0 / 3)


def test_fetch_downloads_a_file_and_refuses_one_too_large(fake: FakeTelegram) -> None:
    token = fake.add_bot()
    file_id, _ = fake.add_file(token, b"\xff\xd8 a photo", "photos/file_7.jpg")
    telegram = connector(fake, token)
    assert telegram.fetch(file_id, 1000).data == b"\xff\xd8 a photo"
    with pytest.raises(PermanentError, match="at most 4"):
        telegram.fetch(file_id, 4)
    with pytest.raises(PermanentError, match=r"(?i)invalid file_id"):
        telegram.fetch("AgAC-gone", 1000)


def test_the_bot_token_stays_out_of_the_logs(fake: FakeTelegram, caplog: pytest.LogCaptureFixture) -> None:
    token = fake.add_bot()
    file_id, _ = fake.add_file(token, b"data", "documents/file_1.pdf")
    with caplog.at_level("DEBUG"):
        telegram = connector(fake, token)
        telegram.check()
        telegram.send(reply("hello"))
        telegram.fetch(file_id, 100)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "sendMessage" in text and "/file/bot<token>/" in text  # the requests are logged ...
    assert token not in text and token.partition(":")[2] not in text  # ... without the token


def test_webhook_teardown_deletes_a_webhook_modes_webhook_and_says_why_it_could_not(fake: FakeTelegram) -> None:
    token = fake.add_bot()
    bot = fake.bots[token]
    connector(fake, token, mode="polling").webhook_teardown()
    assert bot.calls["deleteWebhook"] == 0  # saving it in polling mode already removed any webhook
    hooked = connector(fake, token, mode="webhook")
    hooked.webhook_setup("http://127.0.0.1:9/webhooks/3")
    hooked.webhook_teardown()
    assert bot.webhook_url == "" and bot.calls["deleteWebhook"] == 1
    hooked.webhook_setup("http://127.0.0.1:9/webhooks/3")
    bot.refuse["deleteWebhook"] = (400, "Bad Request: webhook can't be deleted now")
    with pytest.raises(ConfigError, match=r"(?i)refused the setting: webhook can't be deleted now"):
        hooked.webhook_teardown()
    assert bot.webhook_url == "http://127.0.0.1:9/webhooks/3"
