"""Text out of mail's bytes: bodies in declared, undeclared and mislabelled charsets, and header
values with RFC 2047 words read leniently (see connectors.email.parse for the rules)."""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from email.message import Message

_NOT_CHARSETS = {"unicode_escape", "raw_unicode_escape", "idna", "punycode", "undefined", "mbcs", "oem"}
_WINDOWS_OF = {"iso8859-1": "cp1252", "ascii": "cp1252", "iso8859-2": "cp1250"}
_C1 = re.compile(r"[\x80-\x9f]")
_SURROGATE = re.compile("[\udc80-\udcff]")  # an 8-bit byte in a header value as read by ``email``
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff]")  # C0, C1, BOM: never text


def _codec(charset: str | None) -> str | None:
    """Python's name for a declared charset, or None when unknown or not a text encoding."""
    if not charset:
        return None
    try:
        info = codecs.lookup(_SURROGATE.sub("\ufffd", charset).strip().strip("\"'").lower())
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    return info.name


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Text from bytes in a declared, wrong, unknown or missing charset. Never raises."""
    codec = _codec(charset)
    if codec != "utf-8" and not data.isascii():
        try:
            return data.decode("utf-8")  # valid UTF-8 is UTF-8, whatever the label says
        except UnicodeDecodeError:
            pass
    for name in (codec, "utf-8"):
        if not name:
            continue
        try:
            text = data.decode(name)
        except (UnicodeDecodeError, LookupError):
            continue
        if name in _WINDOWS_OF and _C1.search(text):
            try:
                return data.decode(_WINDOWS_OF[name])
            except UnicodeDecodeError:
                pass
        return text
    return data.decode("cp1252", errors="replace")


def _unescape(value: str) -> str:
    """A header value as read by ``email`` (8-bit bytes as surrogates) made real text."""
    if not _SURROGATE.search(value):
        return value
    return decode_bytes(value.encode("utf-8", "surrogateescape"))


_WORD = re.compile(r"=\?([^?\s]+?)(?:\*[^?\s]*)?\?([QqBb])\?([^?]*)\?=")


def _word_bytes(encoding: str, text: str) -> bytes | None:
    if encoding in "Bb":
        text = re.sub(r"[^A-Za-z0-9+/]", "", text)
        try:
            return base64.b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            return None
    text = text.replace("_", " ")
    return re.sub(rb"=([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), text.encode("utf-8", "replace"))


def decode_header_value(value: str) -> str:
    """A header value with its RFC 2047 words decoded, leniently; one line, no control characters.

    Adjacent words are joined (the whitespace between them dropped, RFC 2047 6.2) and their bytes
    decoded together when they share a charset, so a character split over two words survives."""
    value = _unescape(value)
    out: list[str] = []
    pending: list[tuple[str, bytes]] = []  # adjacent decoded words not yet turned into text
    pos = 0

    def flush() -> None:
        while pending:
            charset, data = pending.pop(0)
            while pending and pending[0][0] == charset:
                data += pending.pop(0)[1]
            out.append(decode_bytes(data, charset))

    for match in _WORD.finditer(value):
        between = value[pos : match.start()]
        data = _word_bytes(match.group(2), match.group(3))
        if data is None:  # broken beyond repair: keep it as written
            flush()
            out.append(value[pos : match.end()])
        else:
            if between.strip() or not pending:
                flush()
                out.append(between)
            pending.append((match.group(1).lower(), data))
        pos = match.end()
    flush()
    out.append(value[pos:])
    return _one_line("".join(out))


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", _CONTROL.sub("", text.replace("\x00", ""))).strip()


def _clean_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text)


class _Headers:
    """The raw header values of one message part, unfolded, 8-bit made text; names case-folded."""

    def __init__(self, msg: Message) -> None:
        self.values: dict[str, list[str]] = {}
        for name, value in msg.raw_items():
            unfolded = re.sub(r"\r?\n(?=[ \t])", "", str(value)).strip()
            self.values.setdefault(str(name).strip().lower(), []).append(unfolded)

    def first(self, name: str) -> str | None:
        values = self.values.get(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return self.values.get(name, [])
