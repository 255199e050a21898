"""Pointing the channel's Twilio number at omnidesk (``configure_number`` on an ``sms`` channel).

When the channel is saved, the number (``from_number``, found among the account's
IncomingPhoneNumbers) gets ``SmsUrl`` = the channel's webhook and, with ``voice``, ``VoiceUrl`` =
its ``/voice`` route, both POST. Each reply names its own status callback (``/status?m=...``), so
the number's needs none. Deleting the channel clears the URLs that still point at it. Without
``configure_number`` the admin copies the URLs (``webhook_urls``) into Twilio's console.

WhatsApp senders and Messaging Services are configured in Twilio's console: not here.
"""

from __future__ import annotations

from typing import Any

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from connectors.errors import ConfigError
from connectors.twilio.config import SmsConfig
from connectors.twilio.errors import from_rest


def urls(config: SmsConfig, hook: str) -> dict[str, str]:
    """The number's webhook settings for this channel: Twilio's field names -> our URLs."""
    found = {"sms_url": hook}
    if config.voice:
        found["voice_url"] = f"{hook}/voice"
    return found


def number(api: Client, config: SmsConfig) -> Any:
    """The account's IncomingPhoneNumber for ``from_number``; ConfigError when it has none."""
    if not config.from_number:
        raise ConfigError("configure_number needs from_number: a Messaging Service's webhooks are set in "
                          "Twilio's console")
    try:
        listed = api.incoming_phone_numbers.list(phone_number=config.from_number, limit=5)
    except TwilioRestException as exc:
        raise _config(from_rest(exc), "looking up the number") from None
    except requests.RequestException as exc:
        raise ConfigError(f"Twilio unreachable at {config.api_base_url} while looking up the number: "
                          f"{type(exc).__name__}") from None
    mine = [n for n in listed if n.phone_number == config.from_number]
    if not mine:
        raise ConfigError(f"this Twilio account has no number {config.from_number} (IncomingPhoneNumbers): "
                          "check from_number, or turn configure_number off and set the number's webhooks in "
                          "Twilio's console")
    return mine[0]


def point_at(api: Client, config: SmsConfig, hook: str) -> None:
    """Set the number's SmsUrl (and VoiceUrl) to this channel's webhook. ConfigError if Twilio refuses."""
    found = number(api, config)
    wanted = urls(config, hook)
    methods = {field.replace("_url", "_method"): "POST" for field in wanted}
    if "voice_url" not in wanted and (getattr(found, "voice_url", None) or "").startswith(hook):
        wanted["voice_url"] = ""  # voice switched off: calls no longer come here
    if all(getattr(found, field, None) == url for field, url in wanted.items()):
        return  # already so: saving again changes nothing at Twilio
    _update(api, config, found.sid, {**wanted, **methods}, "setting the number's webhooks")


def release(api: Client, config: SmsConfig, hook: str) -> None:
    """Clear the number's URLs that still point at this channel (the channel was deleted)."""
    found = number(api, config)
    mine = [f for f in ("sms_url", "voice_url") if (getattr(found, f, None) or "").startswith(hook)]
    if mine:
        _update(api, config, found.sid, {f: "" for f in mine}, "clearing the number's webhooks")


def _update(api: Client, config: SmsConfig, sid: str, changes: dict[str, str], doing: str) -> None:
    try:
        api.incoming_phone_numbers(sid).update(**changes)
    except TwilioRestException as exc:
        raise _config(from_rest(exc), doing) from None
    except requests.RequestException as exc:
        raise ConfigError(f"Twilio unreachable at {config.api_base_url} while {doing}: {type(exc).__name__}") from None


def _config(error: Exception, doing: str) -> ConfigError:
    if isinstance(error, ConfigError):
        return error
    return ConfigError(f"Twilio refused {doing}: {getattr(error, 'reason', None) or error}")
