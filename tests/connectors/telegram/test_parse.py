"""Each recorded update shape (fixtures/*.json, as Telegram sends them) and what it becomes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import InboundMessage, MessageEdit, ReachabilityUpdate, RemoteAttachment, WebhookRequest
from connectors.errors import AuthError, PayloadError, UnsupportedEvent
from connectors.telegram import SECRET_HEADER, TelegramConnector, _events
from connectors.telegram.config import TelegramConfig

FIXTURES = Path(__file__).parent / "fixtures"
MARTA = "511234567"
MAP = "https://www.openstreetmap.org/?mlat=41.387917&mlon=2.169919#map=17/41.387917/2.169919"

# fixture -> what it must become: an InboundMessage's fields, a MessageEdit's, a
# ReachabilityUpdate's, or the UnsupportedEvent it raises.
EXPECTED: dict[str, Any] = {
    "text": {"external_id": f"{MARTA}:1042", "text": "Hola! On és la meva comanda #1234?"},
    "photo": {"external_id": f"{MARTA}:1043", "text": "The box arrived broken",
              "remote_attachments": (RemoteAttachment("AgACAgQAAxkBAAIEE2dZ-large", "photo-AQADw7wxG1large.jpg",
                                                      "image/jpeg", 96512),)},
    "document": {"external_id": f"{MARTA}:1044", "text": "Here is the invoice",
                 "remote_attachments": (RemoteAttachment("BQACAgQAAxkBAAIEFGdZ-doc", "factura-1234.pdf",
                                                         "application/pdf", 48213),)},
    "voice": {"external_id": f"{MARTA}:1045", "text": "",
              "remote_attachments": (RemoteAttachment("AwACAgQAAxkBAAIEFWdZ-voice", "AgADvoice01-voice.ogg",
                                                      "audio/ogg", 21876),)},
    "sticker": {"external_id": f"{MARTA}:1046", "text": "[sticker \U0001f622]"},
    "location": {"external_id": f"{MARTA}:1047", "text": f"Location: 41.387917, 2.169919\n{MAP}"},
    "contact": {"external_id": f"{MARTA}:1048", "text": "Contact: Jordi Puig, +34600111222"},
    "callback_query": {"external_id": "callback:2195618309487395843", "text": "pressed: useful:yes",
                       "thread_refs": (f"{MARTA}:2001",)},
    "edited_message": MessageEdit(f"{MARTA}:1042", "Hola! On és la meva comanda #1235?",
                                  datetime.fromtimestamp(1764374820, UTC)),
    "my_chat_member_blocked": ReachabilityUpdate(MARTA, reachable=False, reason="the customer blocked the bot"),
    "group_message": UnsupportedEvent("message in a supergroup chat"),
    "unknown_update": UnsupportedEvent("message_reaction"),
}


def test_every_fixture_has_its_expectation() -> None:
    assert {p.stem for p in FIXTURES.glob("*.json")} == set(EXPECTED)


def connector(**config: Any) -> TelegramConnector:
    return TelegramConnector(TelegramConfig(bot_token="7000000001:AAH-test-token", webhook_secret="s3cret-Token_1",
                                            **config))


def request(body: bytes, secret: str | None = "s3cret-Token_1") -> WebhookRequest:
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    return WebhookRequest("POST", "https://desk.example/webhooks/1", headers, {}, body)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture(name: str) -> None:
    body = (FIXTURES / f"{name}.json").read_bytes()
    expected = EXPECTED[name]
    if isinstance(expected, UnsupportedEvent):
        with pytest.raises(UnsupportedEvent) as raised:
            connector().parse(request(body))
        assert raised.value.event == expected.event
        return
    [event] = connector().parse(request(body))
    if not isinstance(expected, dict):
        assert event == type(expected)(**{**{k: getattr(expected, k) for k in expected.__slots__}, "raw": body})
        return
    assert isinstance(event, InboundMessage)
    for key, value in expected.items():
        assert getattr(event, key) == value, key
    assert event.sender.external_id == MARTA and event.sender.name == "Marta Puig"
    assert event.thread_key == f"telegram:{MARTA}"
    assert event.language == "ca"
    assert event.raw == body


def test_a_wrong_or_missing_secret_token_is_refused_with_403_before_anything_is_read() -> None:
    body = (FIXTURES / "text.json").read_bytes()
    for secret in (None, "", "s3cret-Token_2", "s3cret-Token_1 "):
        with pytest.raises(AuthError) as raised:
            connector().parse(request(body, secret))
        assert raised.value.status == 403
    with pytest.raises(AuthError):  # not even a malformed body is looked at first
        connector().parse(request(b"{not json", None))


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"message": {}}', b'{"update_id": "7"}', b"[" * 100_000,
                                  b'{"update_id": 5, "message": {"message_id": 1}}'])
def test_malformed_updates_are_payload_errors(body: bytes) -> None:
    with pytest.raises(PayloadError):
        connector().parse(request(body))


def test_a_polled_update_that_cannot_be_read_is_kept_with_its_error_not_dropped() -> None:
    data = {"update_id": 9, "message": {"message_id": 1, "from": {"id": 42, "is_bot": False, "first_name": "A"}}}
    [event] = _events(data)
    assert isinstance(event, InboundMessage)
    assert event.external_id == "update:9" and event.sender.external_id == "42"
    assert event.parse_error and "date" in event.parse_error
    assert json.loads(event.raw) == data


def test_a_button_press_is_answered_in_the_webhooks_response() -> None:
    body = (FIXTURES / "callback_query.json").read_bytes()
    answer = connector().answer(request(body))
    assert answer is not None
    assert json.loads(answer.body) == {"method": "answerCallbackQuery", "callback_query_id": "2195618309487395843"}
    assert connector().answer(request((FIXTURES / "text.json").read_bytes())) is None


def test_mode_defaults_to_polling_without_an_https_public_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMNIDESK_PUBLIC_URL", raising=False)
    assert connector().config.mode == "polling"
    monkeypatch.setenv("OMNIDESK_PUBLIC_URL", "https://support.example.com")
    assert connector().config.mode == "webhook"
    assert connector(mode="polling").config.mode == "polling"


@pytest.mark.parametrize("token", ["", "abc", "123", "123:", "abc:def", "12:ab cd"])
def test_a_token_of_the_wrong_shape_is_refused_by_the_settings(token: str) -> None:
    from connectors.base import parse_config
    from connectors.errors import ConfigError

    with pytest.raises(ConfigError, match="bot_token"):
        parse_config(TelegramConnector, {"bot_token": token})


def test_the_webhook_secret_is_generated_and_secret() -> None:
    one, two = TelegramConfig(bot_token="1:a"), TelegramConfig(bot_token="1:a")
    assert one.webhook_secret.get_secret_value() != two.webhook_secret.get_secret_value()
    assert len(one.webhook_secret.get_secret_value()) >= 32
    assert TelegramConfig.secret_fields() == {"bot_token", "webhook_secret"}


def test_a_group_chat_is_ignored_with_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    body = (FIXTURES / "group_message.json").read_bytes()
    with caplog.at_level("INFO", logger="omnidesk.connectors.telegram"), pytest.raises(UnsupportedEvent):
        connector().parse(request(body))
    [line] = [r.getMessage() for r in caplog.records]
    assert "supergroup chat (id -1001987654321)" in line and "private chats only" in line
    assert "Anyone else" not in line  # never the customer's words
