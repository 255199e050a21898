"""The API channel's replies against a real loopback server: one test per outcome of the callback
(2xx, 408, 429 with Retry-After, 5xx, other 4xx, timeout, unreachable) and the body the shop gets."""

from __future__ import annotations

import hmac
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from connectors.api import ApiConfig, ApiConnector, retry_after, sign
from connectors.base import Identity, OutboundMessage
from connectors.errors import PermanentError, TransientError
from tests.fakes.shop import Answer, Shop

SECRET = "a-shared-secret-of-the-shop"


@pytest.fixture
def shop() -> Iterator[Shop]:
    server = Shop()
    yield server
    server.close()


def connector(url: str, timeout: float = 5.0) -> ApiConnector:
    return ApiConnector(ApiConfig(secret=SECRET, callback_url=url, timeout=timeout))


REPLY = OutboundMessage(message_id=314, conversation_id=27, conversation_number=27,
                        to=Identity(external_id="cust-42"), text="Your parcel left today")


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_delivered_with_a_signed_body_the_shop_can_dedup_by(shop: Shop, status: int) -> None:
    shop.answers = [Answer(status)]
    result = connector(shop.url).send(REPLY)
    assert result.status == "delivered"
    [(headers, body)] = shop.requests
    assert hmac.compare_digest(headers["x-omnidesk-signature"], sign(SECRET, body))
    [sent] = shop.bodies()
    assert sent == {"message_id": "314", "delivery_id": "314", "conversation_id": 27, "conversation_number": 27,
                    "to": {"id": "cust-42"}, "text": "Your parcel left today"}
    assert headers["idempotency-key"] == "omnidesk-314"


def test_every_attempt_at_one_reply_carries_the_same_delivery_id(shop: Shop) -> None:
    shop.answers = [Answer(503)]
    with pytest.raises(TransientError):
        connector(shop.url).send(REPLY)
    connector(shop.url).send(REPLY)
    assert shop.delivery_ids() == ["314", "314"]
    assert len({h["idempotency-key"] for h, _ in shop.requests}) == 1


def test_408_is_tried_again(shop: Shop) -> None:
    shop.answers = [Answer(408)]
    with pytest.raises(TransientError, match="HTTP 408") as caught:
        connector(shop.url).send(REPLY)
    assert caught.value.retry_after is None


@pytest.mark.parametrize(("header", "seconds"), [("7", 7.0), ("0.5", 0.5), ("86400", 3600.0), ("soon", None)])
def test_429_is_tried_again_after_retry_after_seconds(shop: Shop, header: str, seconds: float | None) -> None:
    shop.answers = [Answer(429, headers={"Retry-After": header})]
    with pytest.raises(TransientError, match="HTTP 429") as caught:
        connector(shop.url).send(REPLY)
    assert caught.value.retry_after == seconds  # capped at an hour; unreadable: our own backoff


def test_429_with_an_http_date(shop: Shop) -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    shop.answers = [Answer(429, headers={"Retry-After": format_datetime(when, usegmt=True)})]
    with pytest.raises(TransientError) as caught:
        connector(shop.url).send(REPLY)
    assert caught.value.retry_after is not None and 25 <= caught.value.retry_after <= 30


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_tried_again(shop: Shop, status: int) -> None:
    shop.answers = [Answer(status, headers={"Retry-After": "3"})]
    with pytest.raises(TransientError, match=f"HTTP {status}") as caught:
        connector(shop.url).send(REPLY)
    assert caught.value.retry_after == 3.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422])
def test_other_4xx_fail_the_reply_with_a_reason(shop: Shop, status: int) -> None:
    shop.answers = [Answer(status)]
    with pytest.raises(PermanentError, match=f"HTTP {status}"):
        connector(shop.url).send(REPLY)
    assert len(shop.requests) == 1


def test_a_timeout_is_tried_again(shop: Shop) -> None:
    shop.answers = [Answer(delay=1.0)]
    with pytest.raises(TransientError, match=r"timed out after 0\.3 s"):
        connector(shop.url, timeout=0.3).send(REPLY)


def test_an_unreachable_callback_is_tried_again() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/replies"
    with pytest.raises(TransientError, match="unreachable"):
        connector(dead).send(REPLY)


def test_retry_after_reads_seconds_and_dates() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert retry_after("", now=now) is None
    assert retry_after("120", now=now) == 120.0
    assert retry_after("-5", now=now) == 0.0
    assert retry_after("nan", now=now) is None
    assert retry_after("Sun, 01 Mar 2026 12:01:00 GMT", now=now) == 60.0
    assert retry_after("Sun, 01 Mar 2026 11:00:00 GMT", now=now) == 0.0  # already past
