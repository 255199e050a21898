"""The API channel: a shop's own systems (contact form, backend) post messages in and receive
replies at a callback URL. Both directions are signed with HMAC-SHA256 of the raw body."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

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
from connectors.errors import AuthError, PayloadError, PermanentError, TransientError

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
    capabilities = Capabilities(push=True)
    config: ApiConfig

    def parse(self, request: WebhookRequest) -> list[Event]:
        given = request.headers.get(SIGNATURE_HEADER, "")
        expected = sign(self.config.secret.get_secret_value(), request.body)
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise AuthError("missing or invalid X-Omnidesk-Signature")
        try:
            data = _Inbound.model_validate(json.loads(request.body))
        except (ValueError, ValidationError) as exc:
            raise PayloadError(f"invalid message: {_first_error(exc)}") from None
        who = data.sender
        return [
            InboundMessage(
                external_id=data.message_id,
                sender=Identity(external_id=who.id, name=who.name, email=who.email, phone=who.phone),
                text=data.text,
                subject=data.subject,
                thread_key=data.thread or f"from:{who.id}",
                language=data.language,
                raw=request.body,
            )
        ]

    def send(self, message: OutboundMessage) -> SendResult:
        body = json.dumps(
            {
                "message_id": str(message.message_id),
                "conversation_id": message.conversation_id,
                "conversation_number": message.conversation_number,
                "to": {"id": message.to.external_id},
                "text": message.text,
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Omnidesk-Signature": sign(self.config.secret.get_secret_value(), body),
            "User-Agent": "omnidesk",
        }
        try:
            response = httpx.post(self.config.callback_url, content=body, headers=headers,
                                  timeout=self.config.timeout)
        except httpx.TimeoutException:
            raise TransientError(f"callback timed out after {self.config.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise TransientError(f"callback unreachable: {exc}") from None
        if response.is_success:
            return SendResult(external_id=None, status="delivered")
        reason = f"callback answered HTTP {response.status_code}: {response.text[:200]}"
        if response.status_code == 429 or response.status_code >= 500 or response.status_code == 408:
            retry_after = response.headers.get("retry-after", "")
            raise TransientError(reason, retry_after=float(retry_after) if retry_after.isdigit() else None)
        raise PermanentError(reason)


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
    return "body is not JSON"
