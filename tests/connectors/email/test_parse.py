"""Inbound email parsing: the corpus is the test (one case per ``corpus/*.eml``, expectations in the
``.json`` beside it), plus the HTML sanitiser, the size limit and robustness against broken bytes."""

from __future__ import annotations

import email
import json
import random
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import InboundMessage, StatusUpdate
from connectors.email.parse import parse_email, split_reply
from connectors.html import html_to_text, sanitize_html

CORPUS = Path(__file__).parent / "corpus"
FILES = sorted(CORPUS.glob("*.eml"))
OWN_ADDRESSES = ("support@shop.example", "orders@shop.example")


def load(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def test_corpus_is_complete() -> None:
    assert len(FILES) >= 45
    for eml in FILES:
        assert eml.with_suffix(".json").exists(), eml.name
        assert f"`{eml.name}`" in (CORPUS / "README.md").read_text(encoding="utf-8")


def _check_clean(value: str | None, allow_replacement: bool) -> None:
    if value is None:
        return
    assert "\x00" not in value
    value.encode("utf-8")  # no lone surrogates: the store must be able to save it
    if not allow_replacement:
        assert "\ufffd" not in value


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_corpus(path: Path) -> None:
    expect: dict[str, Any] = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    raw = path.read_bytes()
    event = parse_email(raw, own_addresses=OWN_ADDRESSES)
    assert event.raw == raw
    assert event.external_id == expect["external_id"]

    if expect["kind"] == "status":
        assert isinstance(event, StatusUpdate), event
        assert event.status == expect["status"]
        assert expect["reason_contains"] in (event.reason or "")
        return

    assert isinstance(event, InboundMessage), event
    assert parse_email(raw, own_addresses=OWN_ADDRESSES) == event  # deterministic
    assert bool(event.parse_error) == expect.get("parse_error", False), event.parse_error
    allow_replacement = expect.get("parse_error", False)
    for value in (event.text, event.quoted, event.subject, event.sender.name, event.html):
        _check_clean(value, allow_replacement)
    for attachment in event.attachments:
        _check_clean(attachment.filename, False)

    if "sender" in expect:
        assert event.sender.external_id == expect["sender"]
        if expect["sender"] != "unknown":
            assert (event.sender.email or "").lower() == expect["sender"]
    if "sender_name" in expect:
        assert event.sender.name == expect["sender_name"]
    if "subject" in expect:
        assert event.subject == expect["subject"]
    for part in expect.get("text_contains", []):
        assert part in event.text, f"{part!r} not in text:\n{event.text}"
    for part in expect.get("text_not_contains", []):
        assert part not in event.text, f"{part!r} in text:\n{event.text}"
    if "quoted" in expect:
        assert event.quoted == expect["quoted"]
    for part in expect.get("quoted_contains", []):
        assert part in (event.quoted or ""), f"{part!r} not in quoted:\n{event.quoted}"
    if "html" in expect:
        assert event.html == expect["html"]
    for part in expect.get("html_contains", []):
        assert part in (event.html or ""), f"{part!r} not in html:\n{event.html}"
    for part in expect.get("html_not_contains", []):
        assert part.lower() not in (event.html or "").lower(), f"{part!r} in html:\n{event.html}"
    if "attachments" in expect:
        assert len(event.attachments) == len(expect["attachments"]), event.attachments
        pairs = zip(event.attachments, expect["attachments"], strict=True)
        assert [{key: getattr(a, key) for key in wanted} for a, wanted in pairs] == expect["attachments"]
    if "thread_refs" in expect:
        assert list(event.thread_refs) == expect["thread_refs"]
    if "ticket_number" in expect:
        assert event.ticket_number == expect["ticket_number"]
    if "participants" in expect:
        assert [p.external_id for p in event.participants] == expect["participants"]
    if "participant_names" in expect:
        assert [p.name for p in event.participants] == expect["participant_names"]
    if "automatic" in expect:
        assert event.automatic is expect["automatic"]
    if "sent_at" in expect:
        assert event.sent_at == datetime.fromisoformat(expect["sent_at"])
    assert event.thread_key is None


# -- focused tests -------------------------------------------------------------------------------


def test_own_addresses_are_left_out_of_participants() -> None:
    raw = load("reply_with_cc.eml")
    everyone = parse_email(raw)
    assert [p.external_id for p in everyone.participants] == [  # type: ignore[union-attr]
        "support@shop.example",
        "orders@shop.example",
        "jack.roberts@outlook.example",
        "office@roberts-ltd.example",
    ]
    assert "grace.roberts@outlook.example" not in [p.external_id for p in everyone.participants]  # type: ignore[union-attr]
    # compared case-insensitively: the mail says "Support@Shop.example"
    ours = parse_email(raw, own_addresses=["SUPPORT@shop.example", "Orders@Shop.Example"])
    assert [p.external_id for p in ours.participants] == [  # type: ignore[union-attr]
        "jack.roberts@outlook.example",
        "office@roberts-ltd.example",
    ]


def test_attachments_over_the_limit_are_named_in_the_text_instead() -> None:
    event = parse_email(load("attachment_zip_3kb.eml"), max_attachment_bytes=1000)
    assert isinstance(event, InboundMessage)
    assert event.attachments == ()
    assert event.text.startswith("All photos are in the zip file.")
    assert event.text.endswith("[attachment photos.zip (2.9 KB) not stored: larger than 1000 bytes]")
    kept = parse_email(load("attachment_zip_3kb.eml"), max_attachment_bytes=3010)  # exactly its size
    assert [(a.filename, a.size) for a in kept.attachments] == [("photos.zip", 3010)]  # type: ignore[union-attr]
    assert "not stored" not in kept.text  # type: ignore[union-attr]


def test_remote_images_only_when_allowed() -> None:
    raw = load("newsletter_list_id.eml")
    assert "https://news.example/open/9.gif" not in (parse_email(raw).html or "")  # type: ignore[union-attr]
    allowed = parse_email(raw, allow_remote_images=True)
    assert 'src="https://news.example/open/9.gif"' in (allowed.html or "")  # type: ignore[union-attr]


def test_same_bytes_same_synthetic_id_other_bytes_other_id() -> None:
    raw = load("no_message_id.eml")
    first, again = parse_email(raw), parse_email(bytes(raw))
    assert first.external_id == again.external_id
    assert first.external_id.endswith("@omnidesk.invalid>")
    assert len(first.external_id) == len("<@omnidesk.invalid>") + 32
    assert parse_email(raw + b"\r\n").external_id != first.external_id


def test_never_raises_on_mutated_mail() -> None:
    rng = random.Random(1234)
    sources = [p.read_bytes() for p in FILES]
    for _ in range(200):
        raw = bytearray(rng.choice(sources))
        kind = rng.choice(["truncate", "flip", "drop_lines", "all"])
        if kind in ("truncate", "all") and raw:
            del raw[rng.randrange(len(raw)) :]
        if kind in ("flip", "all"):
            for _ in range(rng.randint(1, 30)):
                if raw:
                    raw[rng.randrange(len(raw))] = rng.randrange(256)
        if kind in ("drop_lines", "all"):
            lines = bytes(raw).split(b"\n")
            raw = bytearray(b"\n".join(line for line in lines if rng.random() > 0.15))
        mutated = bytes(raw)
        event = parse_email(mutated, own_addresses=OWN_ADDRESSES)
        assert isinstance(event, InboundMessage | StatusUpdate)
        assert event.raw == mutated
        assert event.external_id.startswith("<") and event.external_id.endswith(">")
        assert parse_email(mutated, own_addresses=OWN_ADDRESSES).external_id == event.external_id
        if isinstance(event, InboundMessage):
            for value in (event.text, event.quoted, event.subject, event.html, event.sender.name):
                _check_clean(value, True)


def test_thread_refs_are_bounded_to_the_root_and_the_latest() -> None:
    references = " ".join(f"<m{i}@example.org>" for i in range(80))
    raw = (
        f"From: a@example.org\r\nMessage-ID: <m80@example.org>\r\nIn-Reply-To: <m79@example.org>\r\n"
        f"References: {references}\r\n\r\nhi\r\n"
    ).encode()
    refs = parse_email(raw).thread_refs  # type: ignore[union-attr]
    assert len(refs) == 50
    assert refs[:3] == ("<m79@example.org>", "<m0@example.org>", "<m31@example.org>")
    assert refs[-1] == "<m78@example.org>"


def test_when_the_email_package_raises_compat32_reads_it() -> None:
    # malformed_param_crashes_parser.eml makes policy.default raise IndexError (CPython 3.11);
    # the corpus case checks the result, this one that nothing of it was lost on the way
    event = parse_email(load("malformed_param_crashes_parser.eml"))
    assert isinstance(event, InboundMessage) and event.parse_error is None
    assert event.sender.external_id == "oskar.lindqvist@telia.example"
    assert [a.filename for a in event.attachments] == ["attachment.pdf"]


def test_when_nothing_can_parse_it_the_bytes_are_still_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(email, "message_from_bytes", broken)
    raw = load("es_iso_8859_1_8bit.eml")
    event = parse_email(raw)
    assert isinstance(event, InboundMessage)
    assert event.parse_error == "RecursionError: maximum recursion depth exceeded"
    assert event.external_id == "<1717659000.123456.jose@telefonica.example>"
    assert (event.sender.external_id, event.sender.name) == ("jose.ibanez@telefonica.example", "José Ibáñez")
    assert event.subject == "Factura con dirección incorrecta"
    assert "¿Podéis enviarme la factura con mi dirección correcta?" in event.text
    assert event.raw == raw
    garbage = bytes(range(256)) * 3
    assert parse_email(garbage).external_id == parse_email(garbage).external_id


def test_sender_falls_back_to_return_path_and_auto_submitted_no_is_a_person() -> None:
    raw = b"Return-Path: <Bounce.Me@List.example>\r\nAuto-Submitted: no\r\nSubject: hi\r\n\r\nhello\r\n"
    event = parse_email(raw)
    assert isinstance(event, InboundMessage)
    assert (event.sender.external_id, event.sender.email) == ("bounce.me@list.example", "Bounce.Me@List.example")
    assert event.automatic is False


def test_empty_and_odd_inputs() -> None:
    for raw in (b"", b"\r\n", b"\x00" * 10, b"From:\r\n\r\n", b"Subject: =?utf-8?B?====?=\r\n\r\n"):
        event = parse_email(raw)
        assert isinstance(event, InboundMessage)
        assert event.raw == raw


# -- quote splitting -----------------------------------------------------------------------------


def test_a_message_that_is_only_a_quote_keeps_its_text() -> None:
    assert split_reply("> just the old text\n> again") == ("> just the old text\n> again", None)


def test_sign_offs_stay_hyphen_lists_stay() -> None:
    text = "Please send:\n- 2 mugs\n- 1 teapot\n\nThanks,\nAda"
    assert split_reply(text) == (text, None)


def test_outlook_header_in_polish() -> None:
    text = "Proszę o fakturę.\n\nOd: Sklep <support@shop.example>\nWysłano: poniedziałek\nDo: ja\n\nstare"
    new, quoted = split_reply(text)
    assert new == "Proszę o fakturę."
    assert quoted is not None and quoted.startswith("Od: Sklep")


# -- HTML ----------------------------------------------------------------------------------------


def test_sanitize_html_drops_what_runs_or_tracks() -> None:
    dirty = (
        '<p onclick="x()">Hi <b>there</b> <i>you</i></p><script>alert(1)</script>'
        '<a href="javascript:alert(1)">js</a><a href="data:text/html;base64,PHNjcmlwdD4=">data</a>'
        '<a href="https://shop.example/o/1" target="_blank">order</a>'
        '<img src="http://tracker.example/p.gif"><img src="https://cdn.example/logo.png" onerror="x()">'
        '<img src="cid:logo@shop"><img src="data:image/png;base64,iVBORw0KGgo=">'
        '<img src="data:image/svg+xml;base64,PHN2Zz4=">'
        '<div style="color: red; position: fixed; background-image: url(http://t.example/x.png)">styled</div>'
        '<span style="width: expression(alert(1))">old IE</span>'
        "<style>body{display:none}</style><iframe src=\"https://evil.example\"></iframe>"
        '<form action="https://evil.example"><input name="password"></form>'
        "<table><tr><td>cell</td></tr></table><ul><li>item</li></ul><blockquote>quote</blockquote>"
    )
    clean = sanitize_html(dirty)
    for bad in ("onclick", "<script", "alert", "javascript:", "data:text", "tracker.example", "cdn.example",
                "onerror", "svg", "position", "url(", "expression", "<style", "<iframe", "<form", "<input"):
        assert bad not in clean, bad
    for good in ("<b>there</b>", "<i>you</i>", 'href="https://shop.example/o/1"', 'src="cid:logo@shop"',
                 'src="data:image/png;base64,iVBORw0KGgo="', 'style="color:red"', "<td>cell</td>",
                 "<li>item</li>", "<blockquote>quote</blockquote>"):
        assert good in clean, good
    assert clean.count('rel="noopener noreferrer nofollow"') == 3
    assert 'src="https://cdn.example/logo.png"' in sanitize_html(dirty, allow_remote_images=True)
    assert "tracker.example" in sanitize_html(dirty, allow_remote_images=True)


def test_html_to_text() -> None:
    html = (
        "<html><head><title>T</title><style>p {color: red}</style><script>var x = 1;</script></head><body>"
        "<h1>Order&nbsp;status</h1><p>Hello &amp; welcome,<br>your order is <b>ready</b>.</p>"
        "<div>Track it <a href='https://t.example/1'>here</a> or at <a href='https://t.example/2'>https://t.example/2</a>"
        " or write to <a href='mailto:help@shop.example'>help@shop.example</a>.</div>"
        "<ul><li>2 mugs</li><li>1   teapot</li></ul><ol><li>pay</li><li>wait</li></ol>"
        "<p>On Mon, X wrote:</p><blockquote><p>old line</p></blockquote><p>caf&eacute; &euro;5 &#x263A;</p>"
        "</body></html>"
    )
    assert html_to_text(html) == (
        "Order status\n\nHello & welcome,\nyour order is ready.\n\n"
        "Track it here (https://t.example/1) or at https://t.example/2 or write to help@shop.example.\n"
        "- 2 mugs\n- 1 teapot\n1. pay\n2. wait\n\nOn Mon, X wrote:\n> old line\n\ncafé €5 ☺"
    )
    assert html_to_text("") == ""
    assert html_to_text("<html><head><meta charset=utf-8><title>x</title><body>hi<script>x()") == "hi"
    assert html_to_text("<div><br></div><div>a</div><pre>  x\n  y</pre>") == "a\n\n  x\n  y"
