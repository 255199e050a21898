"""SMS and WhatsApp through Twilio, and the shop's phone line as a voicemail (``sms`` channels
with ``voice``). One package, two channel kinds sharing the code:

- :mod:`.config`: the settings; :mod:`.parse`: signature and webhooks; :mod:`.send`: the REST API;
  :mod:`.voice`: calls and voicemail; :mod:`.errors`: Twilio's failures as ours; :mod:`.media`: the
  files a reply can carry (MMS, WhatsApp), sent as signed links Twilio fetches;
  :mod:`.numbers`: pointing the number's webhooks at omnidesk.

The customer is known by their number in E.164: the same number on SMS, WhatsApp and calls is one
contact (linked by phone), each channel keeping its conversations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx

from connectors import http
from connectors.base import (
    Capabilities,
    Connector,
    Event,
    Fetched,
    OutboundMessage,
    SendLimit,
    SendResult,
    WebhookAnswer,
    WebhookRequest,
)
from connectors.errors import PayloadError, PermanentError, TransientError
from connectors.twilio import media, numbers, parse, send, voice
from connectors.twilio.config import SmsConfig, TwilioConfig, WhatsAppConfig

EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response />'
XML = "text/xml"


class TwilioConnector(Connector):
    config: TwilioConfig
    Config: ClassVar[type[TwilioConfig]]
    ROUTES: ClassVar[dict[str, parse.Handler]] = {"": parse.message, "status": parse.status}

    def parse(self, request: WebhookRequest) -> list[Event]:
        fields = parse.verify(self.config.auth_token.get_secret_value(), request)
        handler = self.handler(request.route)
        if handler is None or request.method != "POST":
            raise PayloadError(f"{self.kind} channels take no {request.method} /{request.route}")
        return handler(self, fields, request)

    def handler(self, route: str) -> parse.Handler | None:
        return self.ROUTES.get(route)

    def answer(self, request: WebhookRequest) -> WebhookAnswer | None:
        return WebhookAnswer(EMPTY_TWIML, content_type=XML)

    @classmethod
    def webhook_urls(cls, config: Mapping[str, Any], url: str) -> dict[str, str]:
        """The number's (or sender's) incoming-message URL; with ``voice``, its voice URL. Each
        reply names its own status callback."""
        return {"messages": url, **({"voice": f"{url}/voice"} if config.get("voice") else {})}

    def send(self, message: OutboundMessage) -> SendResult:
        # Our id in the callback URL (covered by Twilio's signature): a receipt that comes before
        # this send's outcome is recorded still finds its message.
        callback = self._url(f"status?m={message.message_id}")
        return send.send(self._api(), self.config, message, callback)

    def check(self) -> None:
        """The account's credentials, against Twilio (its Account resource)."""
        send.check(self._api(), self.config)

    def find_sent(self, message: OutboundMessage, since: datetime) -> SendResult | None:
        return send.find_sent(self._api(), self.config, message, since)

    def send_limits(self, message: OutboundMessage) -> tuple[SendLimit, ...]:
        sender = self.config.from_number or self.config.messaging_service_sid
        return (SendLimit(f"twilio:{sender}", self.config.send_rate),)

    def fetch(self, ref: str, max_bytes: int) -> Fetched:
        """A file Twilio holds (MediaUrl, a recording): with the account's credentials on Twilio's
        own host only; Twilio redirects to its storage, where they are not sent."""
        auth = None
        if httpx.URL(ref).host == httpx.URL(self.config.api_base_url).host:
            auth = (self.config.account_sid, self.config.auth_token.get_secret_value())
        try:
            with http.client().stream("GET", ref, auth=auth, follow_redirects=True,
                                     timeout=self.config.timeout) as got:
                if got.status_code in (404, 410):
                    raise PermanentError(f"Twilio no longer has the file (HTTP {got.status_code})")
                if got.status_code == 429 or got.status_code >= 500:
                    raise TransientError(f"fetching the file: HTTP {got.status_code}")
                if not got.is_success:
                    raise PermanentError(f"fetching the file: HTTP {got.status_code}")
                data = bytearray()
                for chunk in got.iter_bytes():
                    data += chunk
                    if len(data) > max_bytes:
                        raise PermanentError(f"the file is larger than {max_bytes} bytes")
                kind = got.headers.get("content-type")
        except httpx.HTTPError as exc:
            raise TransientError(f"fetching the file: {type(exc).__name__}") from None
        return Fetched(bytes(data), content_type=kind)

    def _api(self) -> send.Client:
        if not hasattr(self, "_client"):
            self._client = send.client(self.config)
        return self._client

    def _url(self, route: str) -> str | None:
        return f"{self.webhook_url}/{route}" if self.webhook_url else None


class SmsConnector(TwilioConnector):
    kind = "sms"
    Config = SmsConfig
    config: SmsConfig
    # Twilio segments a long SMS itself; 1600 characters is its limit for one message. Files go
    # as MMS, which Twilio carries to (and from) US and Canadian numbers only: capabilities_for.
    capabilities = Capabilities(push=True, max_text_length=1600, **media.MMS)

    def webhook_setup(self, url: str) -> None:
        """With ``configure_number``: the number's SmsUrl (and VoiceUrl) set to this channel's."""
        if self.config.configure_number:
            numbers.point_at(self._api(), self.config, url)

    def webhook_teardown(self) -> None:
        if self.config.configure_number and self.webhook_url:
            numbers.release(self._api(), self.config, self.webhook_url)

    @classmethod
    def capabilities_for(cls, thread_key: str | None, in_reply_to: str | None) -> Capabilities:
        customer = (thread_key or "").removeprefix("phone:")
        if customer.startswith("+") and not media.mms_reaches(customer):
            return dataclasses.replace(cls.capabilities, supports_attachments=False,
                                       no_attachments_reason=media.no_mms(customer))
        return cls.capabilities
    ROUTES: ClassVar[dict[str, parse.Handler]] = {
        **TwilioConnector.ROUTES, "voice": voice.call, "recording": voice.recording,
        "transcription": voice.transcription}

    def handler(self, route: str) -> parse.Handler | None:
        if route in ("recording", "transcription") and not self.config.voice:
            return lambda *_: []  # a call answered before voice was switched off: keep nothing new
        return super().handler(route)

    def answer(self, request: WebhookRequest) -> WebhookAnswer | None:
        if request.route != "voice":
            return super().answer(request)
        if not self.config.voice or not self.webhook_url:
            return WebhookAnswer(voice.refuse_call(), content_type=XML)
        fields = parse.form(request.body)
        body = voice.answer_call(self.config, self.webhook_url, voice.caller(fields, request), open_now=request.open_now())
        return WebhookAnswer(body, content_type=XML)


class WhatsAppConnector(TwilioConnector):
    kind = "whatsapp"
    Config = WhatsAppConfig
    config: WhatsAppConfig
    # Twilio takes at most 1600 characters in a message's Body, on WhatsApp too; one file a message.
    capabilities = Capabilities(push=True, max_text_length=1600, reply_window=timedelta(hours=24),
                                **media.WHATSAPP)
