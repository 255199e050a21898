"""Twilio's webhooks: the signature, then one handler per route (a dispatch table).

Every request carries ``X-Twilio-Signature``: base64 HMAC-SHA1 of the public URL Twilio called
(with its query) and every form field, keyed by the account's auth token (the library's
RequestValidator). A missing or wrong signature is refused with 403, as Twilio documents, before
anything is read. Twilio adds fields without notice: the signature covers whatever came.

Routes (the path after ``/webhooks/{id}``): ``""`` messages, ``status`` delivery receipts,
``voice`` calls, ``recording`` and ``transcription`` voicemail callbacks (see
:mod:`connectors.twilio.voice`).
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus

from twilio.request_validator import RequestValidator

from connectors.base import (
    DeliveryStatus,
    Event,
    Identity,
    InboundMessage,
    ReachabilityUpdate,
    RemoteAttachment,
    StatusUpdate,
    WebhookRequest,
)
from connectors.errors import AuthError, PayloadError
from connectors.twilio.config import e164
from connectors.twilio.errors import reason_for

if TYPE_CHECKING:
    from connectors.twilio import TwilioConnector

class Form(dict[str, list[str]]):
    """Form fields, each with all its values (a name may repeat), as RequestValidator reads them."""

    def getall(self, name: str) -> list[str]:
        return self[name]

MAX_MEDIA = 10  # Twilio sends at most ten files a message
MAX_FIELD = 10_000  # characters: Body is at most 1600, WhatsApp 4096

# Keywords that opt a number out of (or back into) messages: Twilio's own and the seeds' languages.
OPT_OUT = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "BAJA", "PARAR", "SAIR"}
OPT_IN = {"START", "UNSTOP", "ALTA"}

# Twilio's MessageStatus -> ours; the steps before "sent" (queued, accepting, sending) change nothing.
STATUSES: dict[str, DeliveryStatus] = {
    "sent": "sent", "delivered": "delivered", "read": "read",
    "failed": "failed", "undelivered": "failed", "canceled": "failed",
}
IN_FLIGHT = {"queued", "accepted", "scheduled", "sending", "receiving", "received"}


def form(body: bytes) -> Form:
    """The fields of a form-encoded body (as ``parse_qs`` with blank values kept, in a third of
    its time: most of Twilio's names and values need no unquoting)."""
    fields = Form()
    for pair in body.decode("utf-8", errors="replace").split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if "%" in value or "+" in value:
            value = unquote_plus(value)
        fields.setdefault(name, []).append(value)
    return fields


def verify(token: str, request: WebhookRequest) -> Form:
    """The form fields of a request Twilio signed with ``token``; AuthError (403) otherwise."""
    signature = request.headers.get("x-twilio-signature", "")
    if not signature:
        raise AuthError("missing X-Twilio-Signature", status=403)
    fields = form(request.body) if request.method == "POST" else Form()
    validator = RequestValidator(token)
    # The URL as Twilio called it, first (one HMAC); else the library's full check, which also
    # tries the URL with and without its default port (Twilio signs either) - two more.
    if hmac.compare_digest(validator.compute_signature(request.url, fields).encode(), signature.encode()):
        return fields
    if not validator.validate(request.url, fields, signature):  # constant-time compare
        raise AuthError("invalid X-Twilio-Signature", status=403)
    return fields


def one(fields: Form, name: str, *, required: bool = False) -> str:
    values = fields.get(name) or [""]
    value = values[0]
    if required and not value.strip():
        raise PayloadError(f"invalid webhook: {name} is missing")
    if len(value) > MAX_FIELD:
        raise PayloadError(f"invalid webhook: {name} is over {MAX_FIELD} characters")
    return value


def number(fields: Form, name: str = "From", fallback: str = "") -> str:
    raw = one(fields, name) or fallback
    found = e164(raw)
    if found is None:
        raise PayloadError(f"invalid webhook: {name} {raw[:40]!r} is not a phone number")
    return found


def sender(fields: Form, who: str) -> Identity:
    """The customer, known by their number: the same person on SMS, WhatsApp and calls."""
    name = one(fields, "ProfileName").strip()[:300] or None
    return Identity(external_id=who, name=name, phone=who)


def thread_key(who: str) -> str:
    return f"phone:{who}"


def message(connector: TwilioConnector, fields: Form, request: WebhookRequest) -> list[Event]:
    """An inbound SMS or WhatsApp message, with what it carries (media, location, button)."""
    sid = one(fields, "MessageSid", required=True).strip()[:64]
    account = one(fields, "AccountSid")
    if account and account != connector.config.account_sid:
        raise PayloadError("invalid webhook: AccountSid is not this channel's account")
    who = number(fields)
    text = one(fields, "Body")
    parts = [text] if text.strip() else []
    button = one(fields, "ButtonText").strip()
    payload = one(fields, "ButtonPayload").strip()
    if button or payload:
        if button and button != text.strip():
            parts.append(button)
        parts.append(f"(button reply{': ' + payload if payload else ''})")
    place = location(fields)
    if place:
        parts.append(place)
    replied = one(fields, "OriginalRepliedMessageSid").strip()[:64]
    files = media(fields, sid)
    events: list[Event] = [InboundMessage(
        external_id=sid, sender=sender(fields, who), text="\n".join(parts), thread_key=thread_key(who),
        thread_refs=(replied,) if replied else (), remote_attachments=files, raw=request.body,
    )]
    change = reachability(fields, text, who, request.body)
    if change is not None:
        events.append(change)
    return events


def media(fields: Form, sid: str) -> tuple[RemoteAttachment, ...]:
    """``MediaUrl{N}`` as files a worker fetches later (with the account's credentials)."""
    try:
        count = int(one(fields, "NumMedia") or 0)
    except ValueError:
        raise PayloadError("invalid webhook: NumMedia is not a number") from None
    files = []
    for n in range(min(max(count, 0), MAX_MEDIA)):
        url = one(fields, f"MediaUrl{n}").strip()
        if not url.startswith(("https://", "http://")):
            raise PayloadError(f"invalid webhook: MediaUrl{n} is missing or not a URL")
        kind = one(fields, f"MediaContentType{n}").strip()[:200] or "application/octet-stream"
        files.append(RemoteAttachment(ref=url, filename=f"{sid}-{n}{extension(kind)}", content_type=kind))
    return tuple(files)


def extension(content_type: str) -> str:
    import mimetypes

    return mimetypes.guess_extension(content_type.split(";")[0].strip()) or ""


def location(fields: Form) -> str | None:
    """A shared location as text with a map link; None when the message has none."""
    lat, lon = one(fields, "Latitude").strip(), one(fields, "Longitude").strip()
    if not (lat or lon):
        return None
    try:
        y, x = float(lat), float(lon)
    except ValueError:
        raise PayloadError("invalid webhook: Latitude/Longitude are not numbers") from None
    if not (math.isfinite(y) and math.isfinite(x) and -90 <= y <= 90 and -180 <= x <= 180):
        raise PayloadError("invalid webhook: Latitude/Longitude out of range")
    label = " - ".join(p for p in (one(fields, "Label").strip(), one(fields, "Address").strip()) if p)
    link = f"https://www.openstreetmap.org/?mlat={y:.6f}&mlon={x:.6f}#map=17/{y:.6f}/{x:.6f}"
    return f"Location: {y:.6f}, {x:.6f}{' (' + label + ')' if label else ''} {link}"


def reachability(fields: Form, text: str, who: str, raw: bytes) -> ReachabilityUpdate | None:
    """STOP / START (Twilio's ``OptOutType`` when it handles opt-outs, else the keyword itself)."""
    kind = one(fields, "OptOutType").strip().upper()
    word = kind or text.strip().strip(".!¡").upper()
    if word in OPT_OUT:
        return ReachabilityUpdate(who, reachable=False, reason=f"the customer replied {word}: unsubscribed "
                                       "on this number until they send START", raw=raw)
    if word in OPT_IN:
        return ReachabilityUpdate(who, reachable=True, reason=None, raw=raw)
    return None


def status(connector: TwilioConnector, fields: Form, request: WebhookRequest) -> list[Event]:
    """A delivery receipt for a message we sent (it may come out of order; the store moves
    statuses forward only)."""
    sid = one(fields, "MessageSid", required=True).strip()[:64]
    given = one(fields, "MessageStatus", required=True).strip().lower()
    ours = STATUSES.get(given)
    if ours is None:
        if given in IN_FLIGHT:
            return []
        raise PayloadError(f"invalid webhook: unknown MessageStatus {given[:40]!r}")
    reason = None
    if ours == "failed":
        code = one(fields, "ErrorCode").strip()
        reason = reason_for(int(code) if code.isdigit() else None, one(fields, "ErrorMessage").strip() or given)
    ours_id = request.query.get("m", "")
    message_id = int(ours_id) if ours_id.isdigit() and len(ours_id) < 19 else None
    return [StatusUpdate(external_id=sid, status=ours, reason=reason, raw=request.body, message_id=message_id)]


Handler = Callable[["TwilioConnector", Form, WebhookRequest], list[Event]]
