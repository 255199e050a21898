"""The API channel: a shop's own systems (contact form, backend) post messages in and receive
replies at a callback URL. Both directions are signed with HMAC-SHA256 of the raw body.

Inbound bodies may name their ``type`` (default ``"message"``, the only one used); any other type,
once the signature holds, is an UnsupportedEvent (answered 200, ignored).

Outbound, a reply is posted at least once: the body's ``delivery_id`` (also the ``Idempotency-Key``
header) is the same on every attempt at one reply, so the shop can drop a repeat. The callback's
answer decides what happens next (:func:`outcome`): 2xx delivered; 408, 429 (honouring
``Retry-After``) and 5xx tried again later; any other status fails the reply with its reason.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from connectors import http
from connectors.base import (
    Capabilities,
    ChannelConfig,
    Connector,
    Event,
    Identity,
    InboundMessage,
    OutboundMessage,
    SendResult,
    WebhookRequest,
)
from connectors.errors import AuthError, PayloadError, PermanentError, TransientError, UnsupportedEvent

SIGNATURE_HEADER = "x-omnidesk-signature"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class ApiConfig(ChannelConfig):
    secret: SecretStr = Field(min_length=16)
    callback_url: str = Field(pattern=r"^https?://", max_length=2000)
    timeout: float = Field(default=10.0, gt=0, le=60)


class _From(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=400)
    name: str | None = Field(default=None, max_length=300)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40)


class _Inbound(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    message_id: str = Field(min_length=1, max_length=400)
    sender: _From = Field(alias="from")
    text: str = Field(max_length=100_000)
    thread: str | None = Field(default=None, max_length=400)
    subject: str | None = Field(default=None, max_length=1000)
    language: str | None = Field(default=None, max_length=20)


class ApiConnector(Connector):
    kind = "api"
    Config = ApiConfig
    capabilities = Capabilities(push=True, repeat_safe=True)  # delivery_id / Idempotency-Key
    config: ApiConfig

    def parse(self, request: WebhookRequest) -> list[Event]:
        given = request.headers.get(SIGNATURE_HEADER, "")
        expected = sign(self.config.secret.get_secret_value(), request.body)
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise AuthError("missing or invalid X-Omnidesk-Signature")
        if request.method != "POST" or request.route:
            raise PayloadError("the API channel takes messages only as POST /webhooks/{channel_id}")
        try:
            data = json.loads(request.body)
        except (ValueError, RecursionError):  # RecursionError: a body nested thousands deep
            raise PayloadError("invalid message: body is not JSON") from None
        if not isinstance(data, dict):
            raise PayloadError("invalid message: body is not a JSON object")
        kind = data.get("type", "message")
        if not isinstance(kind, str):
            raise PayloadError("invalid message: type: must be a string")
        handler = EVENTS.get(kind)
        if handler is None:
            raise UnsupportedEvent(kind[:100])
        return handler(data, request.body)

    def send(self, message: OutboundMessage) -> SendResult:
        body = json.dumps(
            {
                "message_id": str(message.message_id),
                "delivery_id": str(message.message_id),  # the same on every attempt: drop repeats by it
                "conversation_id": message.conversation_id,
                "conversation_number": message.conversation_number,
                "to": {"id": message.to.external_id},
                "text": message.text,
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Omnidesk-Signature": sign(self.config.secret.get_secret_value(), body),
            "Idempotency-Key": f"omnidesk-{message.message_id}",
            "User-Agent": "omnidesk",
        }
        try:
            response = http.client().post(self.config.callback_url, content=body, headers=headers,
                                          timeout=self.config.timeout)
        except httpx.TimeoutException:
            raise TransientError(f"callback timed out after {self.config.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise TransientError(f"callback unreachable: {exc}") from None
        return outcome(response)


def outcome(response: httpx.Response) -> SendResult:
    """The callback's answer as our result or error: the one place this channel's failures map."""
    if response.is_success:
        return SendResult(external_id=None, status="delivered")
    status = response.status_code
    reason = f"callback answered HTTP {status}: {response.text[:200]}"
    if status in (408, 429) or status >= 500:
        raise TransientError(reason, retry_after=retry_after(response.headers.get("retry-after", "")))
    raise PermanentError(reason)


def retry_after(value: str, *, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date); None when absent or unreadable."""
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), 3600.0)


def _message(data: dict[str, Any], raw: bytes) -> list[Event]:
    try:
        message = _Inbound.model_validate(data)
    except ValidationError as exc:
        raise PayloadError(f"invalid message: {_first_error(exc)}") from None
    who = message.sender
    return [
        InboundMessage(
            external_id=message.message_id,
            sender=Identity(external_id=who.id, name=who.name, email=who.email, phone=who.phone),
            text=message.text,
            subject=message.subject,
            thread_key=message.thread or f"from:{who.id}",
            language=message.language,
            raw=raw,
        )
    ]


# Event type -> handler; anything else is an UnsupportedEvent.
EVENTS: dict[str, Callable[[dict[str, Any], bytes], list[Event]]] = {"message": _message}


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
