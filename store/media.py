"""Signed, expiring links to a reply's files, for providers that fetch a message's files
themselves (Twilio's ``MediaUrl``): ``{OMNIDESK_PUBLIC_URL}/media/{id}?expires=...&signature=...``.

The signature is HMAC-SHA256, under a key derived from the secret key (OMNIDESK_SECRET_KEY), over
the attachment's id and the link's expiry (Unix seconds): a link names one file until one time,
and no cookie or token is needed to follow it. :func:`verify` checks it in constant time; the web
route (``web.media``) answers 403 for a link forged or expired and 404 for a file that is not a
reply's. Links last ``OMNIDESK_MEDIA_LINK_SECONDS`` (4 hours by default: as long as Twilio queues
a message before it gives up on it), counted from when the deliver job loads the reply.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Engine, select

from store.models import MAX_ID
from store.settings import get_settings, secret_key
from store.sql import attachments, messages


@functools.cache
def _key(secret: str) -> bytes:
    return hashlib.sha256(b"omnidesk-media-links\0" + secret.encode()).digest()


def signature(attachment_id: int, expires: int) -> str:
    """The signature of a link to ``attachment_id`` valid until ``expires`` (Unix seconds)."""
    mac = hmac.new(_key(secret_key()), f"{attachment_id}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def signed_url(attachment_id: int, *, now: float | None = None, ttl: float | None = None) -> str:
    """A link to the file ``attachment_id`` that works for ``ttl`` seconds (the setting by default)."""
    settings = get_settings()
    expires = int((time.time() if now is None else now) + (settings.media_link_seconds if ttl is None else ttl))
    query = urlencode({"expires": expires, "signature": signature(attachment_id, expires)})
    return f"{settings.public_url.rstrip('/')}/media/{attachment_id}?{query}"


def verify(attachment_id: int, expires: str, given: str, *, now: float | None = None) -> str | None:
    """None when the link is good; else why not (for the log, never for the caller)."""
    try:
        until = int(expires)
    except ValueError:
        return "no expiry"
    expected = signature(attachment_id, until)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return "wrong signature"
    if (time.time() if now is None else now) > until:
        return "expired"
    return None


def reply_file(engine: Engine, attachment_id: int) -> Any:
    """The file ``attachment_id`` if it belongs to a reply to a customer (not a private note, not
    a customer's message): its filename, content_type and data; else None."""
    if not 0 < attachment_id <= MAX_ID:
        return None
    f, m = attachments.c, messages.c
    with engine.connect() as conn:
        return conn.execute(
            select(f.filename, f.content_type, f.data).join(messages, m.id == f.message_id)
            .where(f.id == attachment_id, m.direction == "out", m.private.is_(False), f.fetch_state == "done")
        ).first()
