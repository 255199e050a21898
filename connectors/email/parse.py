"""Inbound email: raw RFC 5322 bytes -> :class:`InboundMessage` (or :class:`StatusUpdate` for a bounce).

:func:`parse_email` never raises: whatever the bytes, it returns an event with ``raw`` kept and a
deterministic ``external_id``, with ``parse_error`` set when the message could not be read (when
one ``email`` policy raises but another reads the whole message, nothing was lost: no error).

Decisions a reader should know:

- Headers are decoded here from their raw values, not by the ``email`` header classes (which can
  raise, and turn undeclared 8-bit into U+FFFD): 8-bit bytes are read as UTF-8, else windows-1252;
  RFC 2047 words are decoded leniently (words split inside a character, bad padding, unknown
  charsets). The ``email`` package still reads the MIME structure, with :class:`_RawValues`
  (``compat32`` without its header objects: fast), then ``policy.default``, then ``compat32``
  itself if that raises, then a last plain reading of the bytes with ``parse_error``.
- Bodies: the declared charset is tried first, but bytes that are valid UTF-8 are read as UTF-8
  whatever the label says (mislabelled mail is common, mojibake is worse), and ISO-8859-1/2 bodies
  holding C1 bytes are read as windows-1252/1250, as browsers do. No text or name holds NUL or
  other control characters (PostgreSQL rejects NUL).
- A forwarded message (``message/rfc822``) becomes an ``.eml`` attachment named after its subject;
  none of its text goes into ``text``: the agent opens the attachment.
- Quote splitting (:func:`split_reply`) uses the attribution and header patterns of
  ``mail-parser-reply`` for all its languages, plus ours for what it lacks (Catalan, Portuguese,
  Gmail's Spanish and Polish forms, Outlook headers such as "De:/Enviado el:", "-----Original
  Message-----"-like separators in several languages), ``>`` blocks, the ``-- `` signature and
  "Sent from my ..." lines. Its ``EmailReplyParser`` is not used as such: it strips every line, its
  Polish pattern fires on a single "Od:"/"Data:" line, and its search over the whole text takes
  seconds on long hostile bodies; we try its patterns only at plausible lines. Sign-offs
  ("Thanks,\\nJohn") stay in the text: cutting there hides real text too often. Interleaved and
  bottom-posted replies (new text below a ``>`` block) are not split.
- Bounces: an RFC 3464 report for one of our own Message-IDs with a failed recipient that was not
  just a Cc of the original -> ``StatusUpdate("failed")``, reason "<Status> <Diagnostic-Code>". A
  report where only Cc recipients failed, or that says delayed/relayed/delivered, becomes an
  automatic InboundMessage threaded to our message: the agent sees it, and a message that reached
  the customer is not marked failed. Plain-text bounces from MAILER-DAEMON/postmaster naming our
  Message-ID count when they say the failure is permanent. Bounces of mail that is not ours, and
  every multipart/report (read receipts too), are automatic InboundMessages.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import logging
import re
from collections.abc import Collection
from datetime import UTC, datetime
from email.policy import Policy
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from connectors.base import Identity, InboundMessage, StatusUpdate
from connectors.email.bodies import _Body, _collect
from connectors.email.decode import (
    _SURROGATE,
    _clean_text,
    _Headers,
    _one_line,
    _unescape,
    decode_bytes,
    decode_header_value,
)
from connectors.email.ids import is_own_message_id
from connectors.email.quotes import split_reply
from connectors.html import html_to_text, sanitize_html

log = logging.getLogger(__name__)

# -- headers, ids and addresses -----------------------------------------------------------------


def normalize_id(value: str) -> str | None:
    """``<local@domain>`` from a Message-ID-like value, or None when there is none in it."""
    value = _unescape(value)
    match = re.search(r"<([^<>]*)>", value)
    inner = re.sub(r"\s+", "", match.group(1) if match else value)
    if len(inner) > 900 or not re.fullmatch(r"[!-;=?-~]+@[!-;=?-~]+", inner):
        return None
    return f"<{inner}>"


def _ids(value: str) -> list[str]:
    found = re.findall(r"<[^<>]*>", value) or re.split(r"[\s,]+", value)
    return [norm for item in found if (norm := normalize_id(item))]


def synthetic_id(raw: bytes) -> str:
    return f"<{hashlib.sha256(raw).hexdigest()[:32]}@omnidesk.invalid>"


def _identities(values: list[str]) -> list[Identity]:
    people: list[Identity] = []
    for value in values:
        value = _unescape(value)
        pairs = getaddresses([value])
        if not any("@" in address for _, address in pairs):
            pairs = getaddresses([decode_header_value(value)])  # the whole field was one encoded word
        if not any("@" in address for _, address in pairs):
            pairs = [("", found) for found in re.findall(r"[^\s<>@,;:\"()]+@[^\s<>@,;:\"()]+", value)]
        for name, address in pairs:
            address = _one_line(address).strip("<>")
            if "@" not in address or " " in address:
                continue
            name = decode_header_value(name).strip("\"' ")
            if not name or name.lower() == address.lower():
                name = None
            people.append(Identity(external_id=address.lower(), name=name, email=address))
    return people


def _sender(headers: _Headers) -> Identity:
    for name in ("from", "sender", "return-path"):
        people = _identities(headers.all(name)[:1])
        if people:
            return people[0]
    shown = decode_header_value(headers.first("from") or "")
    return Identity(external_id="unknown", name=shown or None)


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(_one_line(_unescape(value)))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _thread_refs(headers: _Headers) -> list[str]:
    in_reply_to = list(dict.fromkeys(ref for value in headers.all("in-reply-to") for ref in _ids(value)))
    references = [ref for value in headers.all("references") for ref in _ids(value) if ref not in in_reply_to]
    references = list(dict.fromkeys(references))
    room = 50 - len(in_reply_to)
    if len(references) > room:  # keep the thread's root and its latest messages
        references = references[:1] + references[len(references) - room + 1 :] if room > 0 else []
    return (in_reply_to + references)[:50]


def _automatic(headers: _Headers, sender: Identity) -> bool:
    """RFC 3834 and common practice. X-Auto-Response-Suppress is not a sign: Outlook sets it on
    ordinary mail."""
    auto_submitted = (headers.first("auto-submitted") or "").split(";")[0].strip().lower()
    precedence = (headers.first("precedence") or "").strip().lower()
    local = (sender.email or "").partition("@")[0].lower()
    return (
        bool(auto_submitted and auto_submitted != "no")
        or precedence in {"bulk", "junk", "list", "auto_reply"}
        or any(headers.all(name) for name in ("list-id", "list-unsubscribe", "x-failed-recipients"))
        or any(headers.all(name) for name in ("x-autoreply", "x-autorespond"))
        or any(re.sub(r"\s", "", value) == "<>" for value in headers.all("return-path"))
        or local in {"mailer-daemon", "postmaster"}
    )


# -- bounces -------------------------------------------------------------------------------------


def _blocks(report: str) -> list[dict[str, str]]:
    """The field groups of a message/delivery-status body (per-message, then per-recipient)."""
    blocks = []
    for chunk in re.split(r"\n\s*\n", report.replace("\r\n", "\n")):
        fields: dict[str, str] = {}
        for match in re.finditer(r"^([\w-]+)[ \t]*:[ \t]*(.*(?:\n[ \t].*)*)", chunk, re.MULTILINE):
            fields.setdefault(match.group(1).lower(), _one_line(match.group(2)))
        if fields:
            blocks.append(fields)
    return blocks


def _address(value: str) -> str:
    return value.rpartition(";")[2].strip().strip("<>").lower()


_FAILURE = re.compile(
    r"failed permanently|permanent (?:error|failure)|could ?n[o']t be delivered|was ?n[o']t delivered"
    r"|undeliverable|delivery (?:has )?failed|address(?:es)? (?:rejected|not found)|user unknown"
    r"|does not exist|no such user|mailbox unavailable|returned to sender",
    re.IGNORECASE,
)
_PERMANENT = re.compile(
    r"permanent|user unknown|does not exist|no such user|address(?:es)? (?:rejected|not found)", re.IGNORECASE
)
_TEMPORARY = re.compile(r"warning only|will (?:be )?retr(?:y|ied)|been delayed|temporar(?:y|ily)", re.IGNORECASE)
_OWN_IN_TEXT = re.compile(r"<?(omnidesk\.\d+\.[0-9a-f]{12}@[A-Za-z0-9.-]+)>?")


def _bounce(headers: _Headers, root_type: str, body: _Body, sender: Identity, text: str) -> tuple[str, str | None]:
    """(original Message-ID if it is ours else "", failure reason or None for "not failed")."""
    refs = [ref for name in ("in-reply-to", "references") for value in headers.all(name) for ref in _ids(value)]
    embedded = [normalize_id(h.first("message-id") or "") for h in body.originals]
    candidates = [ref for ref in embedded if ref] + refs
    reports = body.reports
    if reports or (root_type == "multipart/report" and body.originals):
        own = next((ref for ref in candidates if is_own_message_id(ref)), "")
        if not own:
            return "", None
        recipients = [b for report in reports for b in _blocks(report)[1:] if "action" in b or "status" in b]
        failed = [
            b for b in recipients
            if b.get("action", "").lower() == "failed" or (not b.get("action") and b.get("status", "").startswith("5"))
        ]
        to, cc = ({p.external_id for h in body.originals[:1] for p in _identities(h.all(f))} for f in ("to", "cc"))

        def cc_only(block: dict[str, str]) -> bool:
            names = {_address(block.get(f, "")) for f in ("final-recipient", "original-recipient")} - {""}
            return bool(names & cc) and not names & to

        primary = [b for b in failed if not cc_only(b)]
        if not primary:  # delayed, relayed, or only a Cc failed: the customer may well have it
            return own, None
        first = primary[0]
        reason = f"{first.get('status', '')} {first.get('diagnostic-code', '')}".strip()
        return own, reason or "delivery failed"
    local = (sender.email or "").partition("@")[0].lower()
    if local not in {"mailer-daemon", "postmaster"}:
        return "", None
    in_text = [f"<{m}>" for m in _OWN_IN_TEXT.findall(text)]
    own = next((ref for ref in [*candidates, *in_text] if is_own_message_id(ref)), "")
    if not own or not _FAILURE.search(text) or (_TEMPORARY.search(text) and not _PERMANENT.search(text)):
        return own, None
    code = re.search(r"\b[45]\.\d{1,3}\.\d{1,3}\b", text)
    response = re.search(r"^[ \t]*([45]\d\d[ -].+)$", text, re.MULTILINE)
    if response:
        line = _one_line(response.group(1))
        return own, line if not code or code.group(0) in line else f"{code.group(0)} {line}"
    return own, _one_line(_FAILURE.search(text).group(0))  # type: ignore[union-attr]


# -- the whole message ---------------------------------------------------------------------------


def _parse(raw: bytes, policy: Policy, own: set[str], limit: int, remote_images: bool) -> InboundMessage | StatusUpdate:
    msg = email.message_from_bytes(raw, policy=policy)
    headers = _Headers(msg)
    external_id = next(filter(None, (normalize_id(v) for v in headers.all("message-id"))), None) or synthetic_id(raw)
    sender = _sender(headers)
    subject = decode_header_value(headers.first("subject") or "") or None
    body = _Body()
    _collect(msg, body, limit)
    html = sanitize_html("\n".join(body.html), allow_remote_images=remote_images) if body.html else None
    full = "\n".join(body.plain).strip("\n").rstrip()
    if not full.strip() and body.html:
        full = html_to_text("\n".join(body.html))
    root_type = msg.get_content_type()
    own_ref, failure = _bounce(headers, root_type, body, sender, full)
    if own_ref and failure:
        return StatusUpdate(external_id=own_ref, status="failed", reason=failure, raw=raw)
    text, quoted = split_reply(full)
    if body.not_stored:
        text = "\n".join([text, *body.not_stored]).strip("\n")
    refs = _thread_refs(headers)
    if own_ref and own_ref not in refs:
        refs.insert(0, own_ref)  # a delayed/partial report of our mail: shown in its conversation
    seen = {sender.external_id, *own}
    participants = []
    for person in _identities(headers.all("to") + headers.all("cc")):
        if person.external_id not in seen:
            seen.add(person.external_id)
            participants.append(person)
    ticket = re.search(r"\[#(\d{1,9})\]", subject or "")
    return InboundMessage(
        external_id=external_id,
        sender=sender,
        text=text,
        html=html,
        quoted=quoted,
        subject=subject,
        thread_refs=tuple(refs[:50]),
        ticket_number=int(ticket.group(1)) if ticket else None,
        participants=tuple(participants),
        attachments=tuple(body.attachments),
        sent_at=_date(headers.first("date")),
        automatic=_automatic(headers, sender) or root_type == "multipart/report" or bool(body.reports),
        parse_error=None if headers.values else "no headers: this is not an email message",
        raw=raw,
    )


def _last_resort(raw: bytes, error: Exception) -> InboundMessage:
    """What can be read of a message the ``email`` package could not take."""
    head, _, rest = raw.replace(b"\r\n", b"\n").partition(b"\n\n")

    def header(name: bytes) -> str | None:
        match = re.search(rb"^" + name + rb"[ \t]*:[ \t]*(.*(?:\n[ \t].*)*)", head, re.MULTILINE | re.IGNORECASE)
        return match.group(1).decode("utf-8", "surrogateescape") if match else None

    sender = _identities([header(b"from") or ""])
    return InboundMessage(
        external_id=normalize_id(header(b"message-id") or "") or synthetic_id(raw),
        sender=sender[0] if sender else Identity(external_id="unknown"),
        subject=decode_header_value(header(b"subject") or "") or None,
        text=_clean_text(decode_bytes(rest or head)).strip(),
        parse_error=f"{type(error).__name__}: {error}"[:500],
        raw=raw,
    )


_TOKEN = r"[!#$%&'*+\-.^_`{|}~0-9A-Za-z]+"
_PLAIN_MIME = re.compile(  # a Content-Type/-Disposition that compat32's parameter reading gets right
    rf"[ \t]*{_TOKEN}(?:/{_TOKEN})?[ \t]*"
    rf"""(?:;[ \t]*(?:{_TOKEN}[ \t]*=[ \t]*(?:"[^"\\\r\n]*"|[^\x00-\x20\x7f()<>@,;:\\"/\[\]?=]+)[ \t]*)?)*"""
)
_LINESEP = re.compile(r"\n|\r")


class _RawValues(type(email.policy.compat32)):  # type: ignore[misc]
    """``compat32`` handing back header values as written, unfolded, 8-bit bytes as surrogates.

    ``policy.default`` builds a header object (a full RFC 5322 parse) on every header access,
    including each ``get_content_type``/``get_param`` the MIME reading makes: over half the time of a
    parse. We decode the headers we need ourselves, so the raw value is all we want (``compat32``'s
    own ``Header`` objects for 8-bit values would hide the bytes from us). A Content-Type or
    Content-Disposition in an unusual syntax (comments, stray characters) still goes through
    ``policy.default``'s parser, which reads more of them right."""

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if not isinstance(value, str):
            return value
        value = "".join(_LINESEP.split(value))
        if name.lower() in ("content-type", "content-disposition") and not _PLAIN_MIME.fullmatch(value):
            try:
                return email.policy.default.header_fetch_parse(name, value)
            except Exception:  # noqa: BLE001 - that parser has crashed on broken parameters: read it raw
                return _SURROGATE.sub("\ufffd", value)
        return value

    def fold_binary(self, name: str, value: str) -> bytes:
        # Re-serialising a returned or forwarded message (its .eml attachment), which is rare: as
        # policy.default writes it (compat32 would re-split every header).
        return email.policy.default.fold_binary(name, value)


_POLICY = _RawValues()


def parse_email(
    raw: bytes,
    *,
    own_addresses: Collection[str] = (),
    max_attachment_bytes: int = 25 * 1024 * 1024,
    allow_remote_images: bool = False,
) -> InboundMessage | StatusUpdate:
    """One email as received (RFC 5322 bytes) -> an inbound message, or a bounce of ours as a status
    update. Never raises: what cannot be read is returned with ``parse_error`` set and ``raw`` kept.

    ``own_addresses`` (the channel's addresses) are left out of ``participants``; attachments larger
    than ``max_attachment_bytes`` are replaced by a line at the end of ``text``; remote images in
    HTML are dropped unless ``allow_remote_images``."""
    raw = bytes(raw)
    own = {address.strip().lower() for address in own_addresses}
    error: Exception | None = None
    for policy in (_POLICY, email.policy.default, email.policy.compat32):
        try:
            return _parse(raw, policy, own, max_attachment_bytes, allow_remote_images)
        except Exception as exc:  # noqa: BLE001 - one bad message must never stop a mailbox
            log.warning("email parse failed (%s); retrying with another policy", exc)
            error = error or exc
    assert error is not None
    try:  # then read what we can of the bytes
        return _last_resort(raw, error)
    except Exception:  # noqa: BLE001
        return InboundMessage(
            external_id=synthetic_id(raw),
            sender=Identity(external_id="unknown"),
            parse_error=f"{type(error).__name__}: {error}"[:500],
            raw=raw,
        )
