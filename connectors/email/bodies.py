"""A message's MIME tree walked into its text and HTML bodies and its attachments (inline images,
forwarded messages as .eml), with size limits; the rules are in connectors.email.parse's
docstring."""

from __future__ import annotations

import email
import email.policy
import mimetypes
import re
from dataclasses import dataclass, field
from email.message import Message

from connectors.base import Attachment
from connectors.email.decode import (
    _clean_text,
    _codec,
    _Headers,
    _one_line,
    _unescape,
    decode_bytes,
    decode_header_value,
)


@dataclass
class _Body:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    not_stored: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)  # message/delivery-status texts
    originals: list[_Headers] = field(default_factory=list)  # headers of returned/forwarded mail


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


def _unflow(text: str, delsp: bool) -> str:
    """Undo RFC 3676 format=flowed: join soft-broken lines of the same quote depth."""
    out: list[str] = []
    buffer: str | None = None
    depth = 0
    for line in text.split("\n"):
        quotes = len(line) - len(line.lstrip(">"))
        content = line[quotes:]
        content = content[1:] if content.startswith(" ") else content
        soft = content.endswith(" ") and content != "-- "
        if soft and delsp:
            content = content[:-1]
        if buffer is not None and quotes == depth:
            buffer += content
        else:
            if buffer is not None:
                out.append((">" * depth + " " if depth else "") + buffer)
            buffer, depth = content, quotes
        if not soft:
            out.append((">" * depth + " " if depth else "") + buffer)
            buffer = None
    if buffer is not None:
        out.append((">" * depth + " " if depth else "") + buffer)
    return "\n".join(out)


def _param(part: Message, name: str, header: str = "content-type") -> str | None:
    value = part.get_param(name, header=header)
    if isinstance(value, tuple):  # RFC 2231: (charset, language, text %-decoded as latin-1)
        try:
            return decode_bytes(value[2].encode("latin-1", "surrogateescape"), value[0])
        except UnicodeEncodeError:
            value = email.utils.collapse_rfc2231_value(value)
    return None if value is None else str(value)


def _declared_name(part: Message) -> str | None:
    """The file name the part declares (as ``get_filename``, but 8-bit and RFC 2231 bytes read as
    :func:`decode_bytes` does, not made U+FFFD)."""
    return (_param(part, "filename", "content-disposition") or "").strip() or (_param(part, "name") or "") or None


def _payload(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - a broken transfer encoding must not lose the part
        data = None
    if isinstance(data, bytes):
        return data
    payload = part.get_payload()
    return payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""


def _message_bytes(part: Message) -> bytes:
    chunks = []
    for sub in part.get_payload() if isinstance(part.get_payload(), list) else []:
        try:
            chunks.append(sub.as_bytes())
        except Exception:  # noqa: BLE001 - re-serialising a broken message can fail anywhere
            chunks.append(str(sub).encode("utf-8", "surrogateescape"))
    return b"\n".join(chunks) if chunks else _payload(part)


def _filename(part: Message, ctype: str, subject: str | None = None) -> str:
    try:
        name = _declared_name(part)
    except Exception:  # noqa: BLE001 - broken parameters: the name is made up below
        name = None
    name = decode_header_value(name or "")
    name = re.split(r"[\\/]", name)[-1].strip(". ")[:200]
    if name:
        return name
    if ctype == "message/rfc822":
        base = " ".join(re.sub(r'[\\/:*?"<>|]+', " ", subject or "").split()).strip(" .")[:100]
        return f"{base or 'message'}.eml"
    if ctype.startswith("message/"):  # delivery-status, disposition-notification, ...
        return f"{ctype.partition('/')[2]}.txt"
    if ctype in ("text/rfc822-headers", "message/rfc822-headers"):
        return "original-headers.txt"
    extension = ".txt" if ctype == "text/plain" else mimetypes.guess_extension(ctype) or ".bin"
    return f"attachment{extension}"


_MIME_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")


def content_type(part: Message) -> str:
    """The part's type; one that is not a valid ``type/subtype`` token (control characters, NUL)
    counts as ``text/plain``, as RFC 2045 section 5.2 says of an invalid Content-Type."""
    ctype = part.get_content_type()
    return ctype if _MIME_TYPE.fullmatch(ctype) else "text/plain"


def _collect(part: Message, body: _Body, limit: int, depth: int = 0) -> None:
    if depth > 40:
        return
    ctype = content_type(part)
    children = part.get_payload() if part.is_multipart() else None
    if ctype == "multipart/alternative" and isinstance(children, list):
        alternatives = []
        for child in children:
            branch = _Body()
            _collect(child, branch, limit, depth + 1)
            alternatives.append(branch)
            body.attachments += branch.attachments
            body.not_stored += branch.not_stored
            body.reports += branch.reports
            body.originals += branch.originals
        body.plain += next((b.plain for b in alternatives if b.plain), [])
        body.html += next((b.html for b in reversed(alternatives) if b.html), [])  # the richest
        return
    if isinstance(children, list) and not ctype.startswith("message/"):
        for child in children:
            if isinstance(child, Message):
                _collect(child, body, limit, depth + 1)
        return
    _leaf(part, ctype, body, limit)


def _leaf(part: Message, ctype: str, body: _Body, limit: int) -> None:
    headers = _Headers(part)
    disposition = (headers.first("content-disposition") or "").split(";")[0].strip().lower()
    try:
        named = bool(_declared_name(part))
    except Exception:  # noqa: BLE001 - unreadable parameters: a file, named below
        named = True
    if ctype.startswith("multipart/"):  # a multipart whose boundary never appears: read it as text
        ctype = "text/plain"
    if ctype in ("text/plain", "text/html") and disposition != "attachment" and not named:
        data = _payload(part)
        charset = _param(part, "charset")
        if ctype == "text/html" and not _codec(charset):
            meta = re.search(rb"<meta[^>]+charset=[\"']?([\w.:-]+)", data[:4096], re.IGNORECASE)
            charset = meta.group(1).decode("ascii") if meta else charset
        text = _clean_text(decode_bytes(data, charset))
        if ctype == "text/html":
            body.html.append(text)
            return
        if (_param(part, "format") or "").lower() == "flowed":
            text = _unflow(text, (_param(part, "delsp") or "").lower() == "yes")
        body.plain.append(text)
        return
    if ctype == "message/rfc822":
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            body.originals.append(_Headers(payload[0]))
    data = _message_bytes(part) if ctype.startswith("message/") else _payload(part)
    if ctype == "message/delivery-status":
        body.reports.append(decode_bytes(data))
    elif ctype in ("text/rfc822-headers", "message/rfc822-headers"):
        try:
            original = email.message_from_bytes(data.lstrip() + b"\n\n", policy=email.policy.compat32)
            body.originals.append(_Headers(original))
        except Exception:  # noqa: BLE001 - returned headers too broken to read: the report stays a file
            pass
    subject = body.originals[-1].first("subject") if ctype == "message/rfc822" and body.originals else None
    name = _filename(part, ctype, decode_header_value(subject) if subject else None)
    if len(data) > limit:
        body.not_stored.append(f"[attachment {name} ({_size(len(data))}) not stored: larger than {_size(limit)}]")
        return
    content_id = headers.first("content-id")
    content_id = _one_line(_unescape(content_id)).strip("<> ") if content_id else None
    inline = disposition == "inline" or (not disposition and bool(content_id))
    body.attachments.append(Attachment(name, ctype, data, content_id or None, inline))
