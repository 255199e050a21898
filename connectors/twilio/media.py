"""The files a Twilio reply can carry, as capabilities (checked when the reply is stored and
again before it is sent), and where MMS reaches.

Twilio does not take the files in the request: it fetches each ``MediaUrl`` itself, from the
signed, expiring link the store gives every reply's file (``Attachment.url``, under
OMNIDESK_PUBLIC_URL). Twilio's limits (its "accepted content types" pages):

- MMS: up to 10 files, 5 MB together; images, audio, video, vCards, PDFs and a few text types.
  Only to and from US and Canadian numbers: elsewhere an SMS carries text alone.
- WhatsApp: one file a message; images (JPEG, PNG) up to 5 MB, audio, video and documents up to 16 MB.
"""

from __future__ import annotations

from typing import Any

import phonenumbers

MB = 1_000_000

MMS: dict[str, Any] = {
    "supports_attachments": True,
    "max_attachments": 10,
    "max_attachments_bytes": 5 * MB,
    "attachment_types": tuple((kind, 5 * MB) for kind in (
        "image/*", "audio/*", "video/*", "application/pdf", "text/vcard", "text/x-vcard", "application/vcard",
        "text/csv", "text/calendar", "text/rtf", "text/richtext", "application/rtf")),
}

WHATSAPP: dict[str, Any] = {
    "supports_attachments": True,
    "max_attachments": 1,
    "attachment_types": (
        ("image/jpeg", 5 * MB), ("image/png", 5 * MB),
        ("audio/ogg", 16 * MB), ("audio/amr", 16 * MB), ("audio/mpeg", 16 * MB), ("audio/mp4", 16 * MB),
        ("audio/aac", 16 * MB),
        ("video/mp4", 16 * MB), ("video/3gpp", 16 * MB),
        ("application/pdf", 16 * MB), ("text/plain", 16 * MB), ("application/msword", 16 * MB),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", 16 * MB),
        ("application/vnd.ms-excel", 16 * MB),
        ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", 16 * MB),
        ("application/vnd.ms-powerpoint", 16 * MB),
        ("application/vnd.openxmlformats-officedocument.presentationml.presentation", 16 * MB),
    ),
}

MMS_REGIONS = ("US", "CA")


def region(number: str) -> str | None:
    """The country (ISO code) of an E.164 number, or None when it has none we know."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return None


def mms_reaches(number: str) -> bool:
    """Whether Twilio carries MMS to or from ``number`` (US and Canadian numbers only). A +1 number
    no country claims (a 555 number, an area code newer than our tables) is left to Twilio."""
    found = region(number)
    return found in MMS_REGIONS or (found is None and number.startswith("+1"))


def no_mms(number: str) -> str:
    place = region(number) or "unknown"
    return (f"files cannot go by SMS to {number} (country {place}): Twilio sends MMS only to US and Canadian "
            "numbers; send the text alone, or the files by another channel")
