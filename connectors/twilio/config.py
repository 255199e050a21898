"""A Twilio channel's settings (``sms`` and ``whatsapp``), checked when the channel is saved."""

from __future__ import annotations

import re

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from connectors.base import ChannelConfig

API_BASE_URL = "https://api.twilio.com"


# A number already written as E.164, as Twilio writes every one (signed, so trusted as written):
# taken as it is. phonenumbers costs ~200 us a number, as much as the rest of a webhook's parsing,
# and would give the same string back; it normalises everything else (settings, spaced forms).
CANONICAL = re.compile(r"\+[1-9][0-9]{7,14}")


def e164(number: str) -> str | None:
    """``number`` (``+34...``, ``whatsapp:+34...``, ``tel:``) in E.164, or None when it is no
    phone number (a short code, an alphanumeric sender)."""
    bare = number.strip()
    for prefix in ("whatsapp:", "tel:", "sms:"):
        bare = bare.removeprefix(prefix)
    if not bare.startswith("+"):
        return None
    if CANONICAL.fullmatch(bare):
        return bare
    return normalise(bare)


def normalise(bare: str) -> str | None:
    try:
        parsed = phonenumbers.parse(bare, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


class Template(BaseModel):
    """An approved WhatsApp template: its Content SID and the variables it takes."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    content_sid: str = Field(pattern=r"^HX[0-9a-fA-F]{32}$")
    language: str = Field(default="en", max_length=20)
    variables: list[str] = Field(default_factory=list, max_length=20)


class TwilioConfig(ChannelConfig):
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: SecretStr = Field(min_length=8)
    from_number: str | None = Field(default=None, description="E.164, without whatsapp:")
    messaging_service_sid: str | None = Field(default=None, pattern=r"^MG[0-9a-fA-F]{32}$")
    api_base_url: str = Field(default=API_BASE_URL, pattern=r"^https?://", max_length=500)
    send_rate: float = Field(default=1.0, gt=0, le=1000, description="messages per second per sender")
    timeout: float = Field(default=10.0, gt=0, le=60)

    @field_validator("from_number")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value is None:
            return None
        number = e164(value)
        if number is None:
            raise ValueError("must be a phone number in E.164 form, e.g. +34911234567")
        return number

    @model_validator(mode="after")
    def _sender(self) -> TwilioConfig:
        if not (self.from_number or self.messaging_service_sid):
            raise ValueError("set from_number or messaging_service_sid")
        return self


class SmsConfig(TwilioConfig):
    configure_number: bool = Field(
        default=False, description="point the number's SmsUrl (and VoiceUrl, with voice) at this channel when it "
                                   "is saved, and clear them when it is deleted")
    voice: bool = Field(default=False, description="answer calls to the number with a voicemail")
    voice_greeting: str = Field(
        default="Hello. Please leave a message after the tone and we will answer you by text message.",
        max_length=1000)
    voice_closed_greeting: str = Field(
        default="Hello. We are closed now. Please leave a message after the tone and we will answer you "
                "by text message when we open.", max_length=1000)
    voice_language: str = Field(default="en-US", max_length=20)
    voice_max_length: int = Field(default=120, ge=5, le=600, description="seconds of voicemail")


class WhatsAppConfig(TwilioConfig):
    templates: list[Template] = Field(default_factory=list, max_length=200)

    @model_validator(mode="after")
    def _unique(self) -> WhatsAppConfig:
        names = [t.name for t in self.templates]
        if len(names) != len(set(names)):
            raise ValueError("templates: names must be unique")
        return self

    def template(self, name: str) -> Template | None:
        return next((t for t in self.templates if t.name == name), None)
