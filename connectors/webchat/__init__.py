"""The website chat channel: a widget a shop adds with one script tag (``/widget.js``), talking to
omnidesk's widget endpoints (``web.webchat``) and following the visitor's own event stream.

Nothing reaches this channel from a provider: the widget's requests are the channel's traffic, and
``web.webchat`` turns them into :class:`InboundMessage` values with :meth:`WebchatConnector.message`.
A reply is "sent" by being stored: the visitor's stream carries it to the widget, and the widget's
read receipt moves it to ``read``. When the visitor has gone (see ``store.webchat.present``) and the
channel names a fallback email channel, the deliver job sends the reply there as well.

Who the visitor is:

- anonymous: a visitor token (:func:`visitor_token`) signed with the installation's secret key,
  naming the channel and a random visitor id; the browser keeps it.
- verified: the shop signs its signed-in customer's id with the channel's ``identity_secret``
  (:func:`identity_hash`, HMAC-SHA256, hex), and the widget passes id, email, name and the hash;
  :func:`verify_identity` compares in constant time. The customer's contact is found by that id
  (and their email), so the chat joins their conversations on other channels.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from datetime import datetime
from typing import Any

from pydantic import Field, SecretStr, field_validator

from connectors.base import (
    Attachment,
    Capabilities,
    ChannelConfig,
    Connector,
    Identity,
    InboundMessage,
    OutboundMessage,
    SendResult,
)
from connectors.errors import AuthError, PayloadError

TOKEN_DAYS = 365  # a visitor token is valid this long (the widget renews it on each visit)
MAX_TEXT = 5_000
CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")  # the browser-made message id
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")


class WebchatConfig(ChannelConfig):
    allowed_origins: list[str] = Field(min_length=1, max_length=50)
    colour: str = Field(default="#1f6feb", pattern=r"^#[0-9a-fA-F]{6}$")
    greeting: str = Field(default="", max_length=500)
    identity_secret: SecretStr | None = Field(default=None, min_length=16)
    pre_chat_form: bool = False
    fallback_email_channel_id: int | None = Field(default=None, ge=1)
    max_attachment_bytes: int = Field(default=10 * 1024 * 1024, ge=1, le=25 * 1024 * 1024)
    allowed_types: list[str] = Field(default_factory=lambda: ["image/*", "application/pdf", "text/plain"],
                                     max_length=50)
    team_id: int | None = Field(default=None, ge=1)  # whose presence says someone is there

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        cleaned = []
        for value in values:
            value = value.strip().rstrip("/").lower()
            if not _ORIGIN.match(value):
                raise ValueError(f"{value!r} is not an origin (scheme://host[:port], no path)")
            cleaned.append(value)
        return cleaned


def origin_allowed(config: WebchatConfig, origin: str | None) -> bool:
    """Whether a request from ``origin`` (the browser's Origin header) may use this channel."""
    return bool(origin) and origin.strip().rstrip("/").lower() in config.allowed_origins


def type_allowed(config: WebchatConfig, content_type: str) -> bool:
    content_type = content_type.split(";")[0].strip().lower()
    for allowed in config.allowed_types:
        if allowed == content_type or (allowed.endswith("/*") and content_type.startswith(allowed[:-1])):
            return True
    return False


def identity_hash(secret: str, customer_id: str) -> str:
    """What the shop's server computes for its signed-in customer: HMAC-SHA256 of the id, hex."""
    return hmac.new(secret.encode(), customer_id.encode(), hashlib.sha256).hexdigest()


def verify_identity(config: WebchatConfig, customer_id: str, given: str) -> None:
    """AuthError unless ``given`` is the identity hash of ``customer_id`` (constant time)."""
    if config.identity_secret is None:
        raise AuthError("this channel takes no signed-in identities (no identity secret is set)")
    expected = identity_hash(config.identity_secret.get_secret_value(), customer_id)
    if not hmac.compare_digest(expected.encode(), (given or "").strip().lower().encode()):
        raise AuthError("the identity's signature is wrong")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def visitor_token(key: str, channel_id: int, visitor: str, *, now: float | None = None) -> str:
    """A token naming ``visitor`` (an external id: ``v:<random>`` or ``u:<shop's customer id>``) on
    the channel, signed with the installation's secret ``key``."""
    body = _b64(json.dumps({"c": channel_id, "v": visitor, "t": int(now or time.time())},
                           separators=(",", ":")).encode())
    mac = hmac.new(key.encode(), b"webchat." + body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def read_token(key: str, channel_id: int, token: str, *, now: float | None = None) -> str:
    """The visitor a token names; AuthError for a forged, expired or other channel's token."""
    body, _, mac = (token or "").partition(".")
    expected = _b64(hmac.new(key.encode(), b"webchat." + body.encode(), hashlib.sha256).digest())
    if not body or not hmac.compare_digest(expected.encode(), mac.encode()):
        raise AuthError("invalid visitor token")
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        channel, visitor, made = int(data["c"]), str(data["v"]), float(data["t"])
    except (ValueError, KeyError, TypeError):
        raise AuthError("invalid visitor token") from None
    if channel != channel_id:
        raise AuthError("the visitor token is another channel's")
    if (now or time.time()) - made > TOKEN_DAYS * 86400:
        raise AuthError("the visitor token has expired")
    return visitor


def thread_key(visitor: str) -> str:
    return f"visitor:{visitor}"


class WebchatConnector(Connector):
    kind = "webchat"
    Config = WebchatConfig
    # Files both ways, no reply window; a reply is stored once and read by the widget (repeat-safe).
    capabilities = Capabilities(supports_attachments=True, repeat_safe=True, max_text_length=MAX_TEXT)
    config: WebchatConfig

    def message(self, visitor: Identity, client_id: str, text: str, *,
                files: tuple[Attachment, ...] = (), language: str | None = None,
                sent_at: datetime | None = None, raw: dict[str, Any] | None = None) -> InboundMessage:
        """A visitor's message from the widget. ``client_id`` (made in the browser) is its external
        id, so the same message sent again after a network drop is stored once."""
        if not CLIENT_ID.match(client_id or ""):
            raise PayloadError("id: 8 to 64 letters, digits, '-' or '_'")
        text = (text or "").replace("\x00", "").strip()
        if not text and not files:
            raise PayloadError("text: empty message")
        if len(text) > MAX_TEXT:
            raise PayloadError(f"text: at most {MAX_TEXT} characters")
        for file in files:
            if file.size > self.config.max_attachment_bytes:
                raise PayloadError(f"{file.filename}: larger than {self.config.max_attachment_bytes} bytes")
            if not type_allowed(self.config, file.content_type):
                raise PayloadError(f"{file.filename}: files of type {file.content_type} are not taken")
        return InboundMessage(
            external_id=f"wc:{client_id}", sender=visitor, text=text, thread_key=thread_key(visitor.external_id),
            attachments=files, language=language, sent_at=sent_at,
            raw=json.dumps(raw or {"id": client_id, "text": text}, default=str).encode())

    def send(self, message: OutboundMessage) -> SendResult:
        """The reply is stored; the visitor's stream carries it. Delivered to the widget's channel."""
        return SendResult(external_id=f"wc:out:{message.message_id}", status="delivered")

    def fallback_channel(self) -> int | None:
        """The channel a reply also goes out on when the visitor has gone: the fallback email."""
        return self.config.fallback_email_channel_id
