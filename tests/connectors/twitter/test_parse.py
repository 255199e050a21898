"""X's payloads, one recorded fixture per shape (API v2 pages of mentions and DM events, Account
Activity bodies), each with the messages it must give; the webhook's CRC and signature checks."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from connectors.base import InboundMessage, WebhookRequest
from connectors.errors import AuthError, PayloadError, UnsupportedEvent
from connectors.twitter import TwitterConnector, events, public
from connectors.twitter.config import TwitterConfig

FIXTURES = Path(__file__).parent / "fixtures"
SHOP = "1500000000000000001"
SECRET = "consumer-secret-of-the-app"


def connector(**extra: Any) -> TwitterConnector:
    return TwitterConnector(TwitterConfig(consumer_key="ck", consumer_secret=SECRET, access_token="at",
                                          access_token_secret="ats", user_id=SHOP, **{"webhooks": True, **extra}))


def signed(body: bytes, secret: str = SECRET) -> WebhookRequest:
    mac = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return WebhookRequest(method="POST", url="https://desk.example/webhooks/1",
                          headers={"x-twitter-webhooks-signature": f"sha256={mac}"}, query={}, body=body)


def as_dict(message: InboundMessage) -> dict[str, Any]:
    return {"external_id": message.external_id,
            "sender": {"external_id": message.sender.external_id, "name": message.sender.name},
            "text": message.text, "thread_key": message.thread_key, "thread_refs": list(message.thread_refs),
            "sent_at": message.sent_at.isoformat() if message.sent_at else None, "language": message.language,
            "parse_error": message.parse_error,
            "files": [[f.ref, f.filename, f.content_type] for f in message.remote_attachments]}


def parse_fixture(path: Path) -> list[dict[str, Any]] | str:
    body = path.read_bytes()
    if path.name.startswith("activity_"):
        try:
            return [as_dict(m) for m in connector().parse(signed(body))]
        except UnsupportedEvent:
            return "unsupported"
    page = json.loads(body)
    users, media = events.includes(page)
    parse = events.tweet if path.name.startswith("mentions_") else events.dm_event
    return [as_dict(m) for item in page["data"] if (m := parse(item, users, media, SHOP)) is not None]


CASES = sorted(p for p in FIXTURES.glob("*.json") if not p.name.endswith(".expected.json"))


def test_every_fixture_has_its_expectation() -> None:
    assert len(CASES) >= 7
    for path in CASES:
        assert path.with_suffix(".expected.json").exists(), path.name


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_fixture(path: Path) -> None:
    expected = json.loads(path.with_suffix(".expected.json").read_text())
    assert parse_fixture(path) == expected


def test_raw_payload_is_kept_per_item() -> None:
    page = json.loads((FIXTURES / "dm_events_text.json").read_text())
    users, media = events.includes(page)
    message = events.dm_event(page["data"][0], users, media, SHOP)
    assert message is not None and json.loads(message.raw) == page["data"][0]


def test_an_unreadable_item_is_kept_with_its_error_and_one_without_an_id_is_dropped() -> None:
    broken = {"id": "1725000000000000777", "author_id": "42", "text": "x", "referenced_tweets": "not a list"}
    message = events.tweet(broken, {}, {}, SHOP)
    assert message is not None and message.external_id == "tweet:1725000000000000777"
    assert message.parse_error == "unreadable tweet: AttributeError" and json.loads(message.raw) == broken
    assert events.tweet({"text": "no id"}, {}, {}, SHOP) is None
    assert events.dm_event({"id": "../../etc", "text": "x"}, {}, {}, SHOP) is None


def test_crc_challenge_is_answered_with_the_hmac_of_the_token() -> None:
    token = "9b4507b3-9040-4669-9d86-e4a2ee14c6b2"
    request = WebhookRequest(method="GET", url="https://desk.example/webhooks/1?crc_token=" + token, headers={},
                             query={"crc_token": token}, body=b"")
    x = connector()
    assert x.parse(request) == []
    answer = x.answer(request)
    assert answer is not None and answer.status == 200 and answer.content_type == "application/json"
    expected = base64.b64encode(hmac.new(SECRET.encode(), token.encode(), hashlib.sha256).digest()).decode()
    assert json.loads(answer.body) == {"response_token": "sha256=" + expected}
    with pytest.raises(PayloadError, match="crc_token"):
        x.parse(WebhookRequest(method="GET", url="u", headers={}, query={}, body=b""))


def test_event_posts_need_the_signature_of_the_app_secret() -> None:
    body = (FIXTURES / "activity_direct_message.json").read_bytes()
    x = connector()
    assert len(x.parse(signed(body))) == 1
    assert x.answer(signed(body)) is None  # our own 202
    tampered = dataclasses.replace(signed(body), body=body.replace(b"Any news", b"Any NEWS"))
    for request in (signed(body, secret="someone-else"), tampered,
                    WebhookRequest(method="POST", url="u", headers={}, query={}, body=body)):
        with pytest.raises(AuthError) as refused:
            x.parse(request)
        assert refused.value.status == 403


def test_bad_bodies_and_channels_without_webhooks() -> None:
    with pytest.raises(PayloadError, match="not JSON"):
        connector().parse(signed(b"{nope"))
    with pytest.raises(PayloadError, match="not a JSON object"):
        connector().parse(signed(b"[1]"))
    with pytest.raises(PayloadError, match="webhooks"):
        connector(webhooks=False).parse(signed(b"{}"))
    with pytest.raises(AuthError):  # the signature first, always
        connector(webhooks=False).parse(dataclasses.replace(signed(b"{}"), headers={}))
    with pytest.raises(UnsupportedEvent):
        connector().parse(signed(b'{"for_user_id": "' + SHOP.encode() + b'", "tweet_delete_events": []}'))
    other = json.loads((FIXTURES / "activity_direct_message.json").read_text()) | {"for_user_id": "777"}
    assert connector().parse(signed(json.dumps(other).encode())) == []  # another account of the app


def test_which_replies_go_in_public() -> None:
    assert public("x-thread:1", "tweet:5") and public(None, "tweet:5")
    assert not public("x-dm:1-2", "tweet:5") and not public(None, "dm:5") and not public(None, None)
    assert TwitterConnector.capabilities_for("x-thread:1", "tweet:5").max_text_length == 280
    assert TwitterConnector.capabilities_for("x-dm:1-2", "dm:5").max_text_length == 10_000
    assert events.dm_thread("2244994945", SHOP) == "x-dm:2244994945-1500000000000000001"
