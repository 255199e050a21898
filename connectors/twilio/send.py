"""Sending through Twilio's REST API with the twilio library, and asking it what was sent.

Twilio has no idempotency key: a send whose answer was lost may have been taken. The deliver job
asks :func:`find_sent` before any attempt after the first. The lookup lists the messages to the
customer from this sender (``To``, ``From``) and matches the reply by its text and creation time:
not by ``DateSent>=``, which leaves out messages still queued at Twilio (their DateSent is empty
until they leave), exactly the ones a lost answer leaves behind.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from connectors.base import DeliveryStatus, OutboundMessage, SendResult
from connectors.errors import ConfigError, PermanentError
from connectors.twilio import media
from connectors.twilio.config import TwilioConfig, WhatsAppConfig
from connectors.twilio.errors import from_rest, from_transport

# The library logs every request and its form (the customer's text) at INFO: keep it quiet.
quiet = logging.getLogger("omnidesk.connectors.twilio.http")
quiet.setLevel(logging.WARNING)

# Twilio's status of a message it took -> ours: once Twilio has it, it is "sent" for the agent.
TAKEN: dict[str, DeliveryStatus] = {"delivered": "delivered", "read": "read", "failed": "failed",
                                    "undelivered": "failed"}
CLOCK_SKEW = timedelta(minutes=2)  # Twilio's clock against ours
LOOKUP_LIMIT = 200


def client(config: TwilioConfig) -> Client:
    """A REST client on the configured base URL, with a timeout (the library has none)."""
    made = Client(config.account_sid, config.auth_token.get_secret_value(), environment={},
                  http_client=TwilioHttpClient(timeout=config.timeout, logger=quiet))
    made.api.base_url = config.api_base_url.rstrip("/")
    return made


def address(config: TwilioConfig, number: str) -> str:
    return f"whatsapp:{number}" if isinstance(config, WhatsAppConfig) else number


def arguments(config: TwilioConfig, message: OutboundMessage, status_callback: str | None) -> dict[str, Any]:
    """The create call's arguments: free text, or an approved template (WhatsApp)."""
    args: dict[str, Any] = {"to": address(config, message.to.external_id)}
    if config.messaging_service_sid:
        args["messaging_service_sid"] = config.messaging_service_sid
    if config.from_number:
        args["from_"] = address(config, config.from_number)
    if status_callback:
        args["status_callback"] = status_callback
    if message.template is None:
        if message.text or not message.attachments:
            args["body"] = message.text
        if message.attachments:
            args["media_url"] = media_urls(config, message)
        return args
    name = str(message.template.get("name"))
    template = config.template(name) if isinstance(config, WhatsAppConfig) else None
    if template is None:
        raise PermanentError(f"no template {name!r} in this channel's settings")
    variables = message.template.get("variables") or {}
    args["content_sid"] = template.content_sid
    args["content_variables"] = json.dumps({str(k): str(v) for k, v in dict(variables).items()})
    return args


def media_urls(config: TwilioConfig, message: OutboundMessage) -> list[str]:
    """The signed links Twilio fetches the reply's files from. PermanentError where they cannot
    go: a file without a link, or MMS from a number outside the US and Canada."""
    if not isinstance(config, WhatsAppConfig) and config.from_number and not media.mms_reaches(config.from_number):
        raise PermanentError(f"this channel's number {config.from_number} cannot send files: Twilio sends MMS "
                             "only from US and Canadian numbers; send the text alone")
    urls = [file.url for file in message.attachments]
    if not all(urls):
        raise PermanentError("the reply's files have no link Twilio could fetch them from")
    return [url for url in urls if url]


def send(api: Client, config: TwilioConfig, message: OutboundMessage, status_callback: str | None) -> SendResult:
    try:
        created = api.messages.create(**arguments(config, message, status_callback))
    except TwilioRestException as exc:
        raise from_rest(exc) from None
    except requests.RequestException as exc:
        raise from_transport(exc) from None
    return result(created)


def result(created: Any) -> SendResult:
    segments = _int(getattr(created, "num_segments", None))
    note = f"sent as {segments} SMS segments" if segments and segments > 1 else None
    return SendResult(external_id=created.sid, status=TAKEN.get(str(created.status), "sent"), note=note)


def check(api: Client, config: TwilioConfig) -> None:
    """ConfigError unless Twilio takes the account's credentials and the account is active."""
    try:
        account = api.api.v2010.accounts(config.account_sid).fetch()
    except TwilioRestException as exc:
        error = from_rest(exc)
        raise error if isinstance(error, ConfigError) else ConfigError(f"Twilio: {error}") from None
    except requests.RequestException as exc:
        raise ConfigError(f"Twilio unreachable at {config.api_base_url}: {type(exc).__name__}") from None
    if account.status not in (None, "active"):
        raise ConfigError(f"the Twilio account is {account.status}")


def find_sent(api: Client, config: TwilioConfig, message: OutboundMessage, since: datetime) -> SendResult | None:
    """The message Twilio has for an earlier attempt at ``message``, or None. TransientError
    when Twilio cannot be asked now."""
    since = (since if since.tzinfo else since.replace(tzinfo=UTC)) - CLOCK_SKEW
    query: dict[str, Any] = {"to": address(config, message.to.external_id), "limit": LOOKUP_LIMIT,
                             "page_size": 50}
    if config.from_number:
        query["from_"] = address(config, config.from_number)
    try:
        listed = api.messages.list(**query)
    except TwilioRestException as exc:
        raise from_rest(exc) from None
    except requests.RequestException as exc:
        raise from_transport(exc) from None
    for sent in listed:  # newest first
        created = sent.date_created
        if created is not None and created < since:
            break
        if message.template is not None or (sent.body or "") == message.text:
            return result(sent)
    return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
