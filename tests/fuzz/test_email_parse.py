"""Fuzzing the email parser: any bytes, and the corpus messages broken in the ways mail breaks
(bytes flipped, lines cut, headers repeated, hostile header values, MIME nested deep), give an
event and never an exception, with what ``parse_email`` promises of every event: ``raw`` kept, the
same event for the same bytes, and no text the store cannot save (NUL, lone surrogates)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.base import InboundMessage, StatusUpdate
from connectors.email.parse import parse_email
from tests.fuzz.strategies import budget

CORPUS = Path(__file__).parents[1] / "connectors" / "email" / "corpus"
MESSAGES = [path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))]
OWN = ("support@shop.example",)

# Pieces that have broken mail parsers: encoded words with bad charsets and padding, parameters in
# RFC 2231 form, boundaries, NUL, CR alone, 8-bit bytes, very long lines, header continuation.
HOSTILE = [
    b"\x00", b"\r", b"\n\n", b"\r\n\r\n", b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"=?", b"?=",
    b"=?utf-8?b?w6k=?=", b"=?x-unknown?q?=FF?=", b"=?utf-8?b?====?=", b"=?utf-7?q?+AGE-?=",
    b"Content-Type: multipart/mixed; boundary=\"b\"\r\n", b"\r\n--b\r\n", b"\r\n--b--\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"=\r\n", b"=ZZ", b"filename*0*=utf-8''%E9%FF; filename*1=\"x\"", b"charset=\"\xff\"",
    b"Message-ID: <\x00@x>\r\n", b"Date: Mon, 1 Jan 0001 00:00:00 +2400\r\n", b"Date: 99999999999\r\n",
    b"From: \"\\\" <a@b>, <<>>, @,\r\n", b"Subject: [#99999999999] x\r\n", b"\r\n\t", b"x" * 2000,
    b"Content-Type: message/rfc822\r\n\r\n", b"Content-Type: multipart/report; report-type=delivery-status\r\n",
    b"Content-Type: text/html\r\n\r\n<script>", b"<img src=http://x>", b"&#0;&#xD800;",
    b"Content-Type: \x00text/plain; name=\"a\x00.txt\"\r\nContent-Disposition: attachment\r\n",
]


def deep_multipart(depth: int) -> bytes:
    """A message with ``depth`` multipart levels, each one's only part the next."""
    head = b"From: a@b.example\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    parts = [b"Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n" % (n, n) for n in range(depth)]
    tails = [b"\r\n--b%d--\r\n" % n for n in reversed(range(depth))]
    return head + b"".join(parts) + b"Content-Type: text/plain\r\n\r\nhello" + b"".join(tails)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A corpus message with a few edits: a byte range replaced by random or hostile bytes, a cut,
    or a header line repeated."""
    data = bytearray(draw(st.sampled_from(MESSAGES)))
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        at = draw(st.integers(min_value=0, max_value=len(data)))
        kind = draw(st.sampled_from(["insert", "insert", "replace", "cut", "truncate", "repeat"]))
        piece = draw(st.one_of(st.sampled_from(HOSTILE), st.binary(min_size=1, max_size=16)))
        if kind == "insert":
            data[at:at] = piece
        elif kind == "replace":
            data[at:at + len(piece)] = piece
        elif kind == "cut":
            del data[at:at + draw(st.integers(min_value=1, max_value=200))]
        elif kind == "truncate":
            del data[at:]
        else:  # repeat the line around ``at`` (headers given twice, boundaries repeated)
            start = data.rfind(b"\n", 0, at) + 1
            end = data.find(b"\n", at)
            line = bytes(data[start:end + 1 if end >= 0 else len(data)])
            data[start:start] = line * draw(st.integers(min_value=1, max_value=50))
    return bytes(data)


def check(raw: bytes) -> None:
    event = parse_email(raw, own_addresses=OWN)
    assert isinstance(event, InboundMessage | StatusUpdate), event
    assert event.raw == raw
    assert event.external_id
    assert parse_email(raw, own_addresses=OWN) == event  # deterministic: a re-fetch is a duplicate
    if isinstance(event, StatusUpdate):
        texts = [event.external_id, event.reason]
    else:
        people = [event.sender, *event.participants]
        texts = [event.external_id, event.text, event.html, event.quoted, event.subject, *event.thread_refs,
                 *(v for p in people for v in (p.external_id, p.name, p.email)),
                 *(a.filename for a in event.attachments), *(a.content_type for a in event.attachments)]
    for value in texts:
        if value is not None:
            assert "\x00" not in value, value
            value.encode("utf-8")  # no lone surrogate: PostgreSQL must be able to store it


@given(mutated())
@budget(250)
def test_mutated_corpus_messages_give_an_event(raw: bytes) -> None:
    check(raw)


@given(st.binary(max_size=3000))
@budget(150)
def test_any_bytes_give_an_event(raw: bytes) -> None:
    check(raw)


@given(st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=30).map(b"".join))
@budget(150)
def test_hostile_pieces_give_an_event(raw: bytes) -> None:
    check(raw)


@pytest.mark.parametrize("depth", [50, 1_100])
def test_deep_multipart_gives_an_event(depth: int) -> None:
    check(deep_multipart(depth))
