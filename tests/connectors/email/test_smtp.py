"""The email connector's SMTP side against a real SMTP server (aiosmtpd): threading headers, the
ticket number, encodings, attachments, signature, loop marks, and the server's refusals."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.base import Attachment, Identity, OutboundMessage, parse_config
from connectors.email import EmailConnector
from connectors.email.compose import subject_for
from connectors.email.ids import is_own_message_id
from connectors.errors import ConfigError, PermanentError, TransientError
from tests.smtpsink import SmtpSink
from tests.support import free_port

SHOP = "support@shop.example"


def connector(sink: SmtpSink | None, **extra: Any) -> EmailConnector:
    smtp = sink.settings() if sink else {"smtp_host": "127.0.0.1", "smtp_port": free_port(), "smtp_security": "none"}
    values = {"address": SHOP, "imap_host": "127.0.0.1", "imap_security": "none", "imap_password": "x",
              "from_name": "Botiga Núria", **smtp, **extra}
    return EmailConnector(parse_config(EmailConnector, values))


def reply(conn: EmailConnector, **extra: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "message_id": 42, "conversation_id": 1234, "conversation_number": 1234,
        "to": Identity("zofia@example.pl", name="Zofia Żółkiewska", email="zofia@example.pl"),
        "text": "Dzień dobry,\n\npaczka wyjechała dziś.", "subject": "Gdzie jest moja paczka?",
        "in_reply_to": "<c2@example.pl>", "references": ("<c1@example.pl>", "<omnidesk.40.aaaaaaaaaaaa@shop.example>",
                                                        "<c2@example.pl>"),
        "cc": (Identity("jan@example.pl", email="jan@example.pl"),),
    }
    values.update(extra)
    values.setdefault("external_id", conn.new_external_id(values["message_id"]))
    return OutboundMessage(**values)


def test_a_reply_threads_in_the_customers_mail_client(smtp_sink: SmtpSink) -> None:
    conn = connector(smtp_sink, signature="Botiga Núria · +34 600 000 000")
    out = reply(conn, attachments=(Attachment("faktura_źródło.pdf", "application/pdf", b"%PDF-1.4 test"),))
    result = conn.send(out)
    [got] = smtp_sink.wait_for(1)
    msg = got.message
    assert result.external_id == out.external_id == msg["Message-ID"] and is_own_message_id(msg["Message-ID"])
    assert got.mail_from == SHOP and sorted(got.rcpt_tos) == ["jan@example.pl", "zofia@example.pl"]
    assert msg["From"].addresses[0].display_name == "Botiga Núria"
    assert msg["To"].addresses[0].display_name == "Zofia Żółkiewska"
    assert msg["Subject"] == "Re: Gdzie jest moja paczka? [#1234]"
    assert msg["In-Reply-To"] == "<c2@example.pl>"
    assert msg["References"].split() == ["<c1@example.pl>", "<omnidesk.40.aaaaaaaaaaaa@shop.example>",
                                         "<c2@example.pl>"]
    assert msg["Auto-Submitted"] is None  # a person wrote it
    assert got.raw.isascii()  # headers RFC 2047-encoded, bodies transfer-encoded
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "paczka wyjechała dziś." in text and text.rstrip().endswith("-- \nBotiga Núria · +34 600 000 000")
    html = msg.get_body(("html",)).get_content()
    assert "<p>Dzień dobry,</p>" in html and "Botiga Núria" in html
    [attached] = list(msg.iter_attachments())
    assert attached.get_filename() == "faktura_źródło.pdf" and attached.get_content() == b"%PDF-1.4 test"


def test_automatic_mail_is_marked_so_robots_do_not_answer(smtp_sink: SmtpSink) -> None:
    conn = connector(smtp_sink)
    conn.send(reply(conn, automatic=True, cc=(), references=(), in_reply_to=None, subject=None))
    msg = smtp_sink.wait_for(1)[0].message
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Subject"] == "Re: Your request [#1234]"
    assert msg["In-Reply-To"] is None and msg["References"] is None


@pytest.mark.parametrize(("subject", "expected"), [
    ("RE: Factura [#77]", "RE: Factura [#77]"),
    ("AW: Rücksendung", "AW: Rücksendung [#77]"),
    ("Re:   spaced\n  out", "Re: spaced out [#77]"),
    ("Odp: Zwrot", "Odp: Zwrot [#77]"),
])
def test_subjects_keep_one_prefix_and_the_ticket_number(subject: str, expected: str) -> None:
    assert subject_for(subject, 77) == expected


def test_a_temporary_refusal_is_transient_and_a_permanent_one_fails(smtp_sink: SmtpSink) -> None:
    conn = connector(smtp_sink)
    smtp_sink.fail_next(451, "4.7.1 Greylisted, try again later")
    with pytest.raises(TransientError, match=r"451 4\.7\.1 Greylisted"):
        conn.send(reply(conn))
    smtp_sink.fail_next(550, "5.1.1 <zofia@example.pl>: Recipient address rejected: User unknown")
    with pytest.raises(PermanentError) as failed:
        conn.send(reply(conn))
    assert "550 5.1.1" in failed.value.reason and "User unknown" in failed.value.reason
    conn.send(reply(conn))
    assert len(smtp_sink.wait_for(1)) == 1


def test_server_down_is_transient() -> None:
    conn = connector(None, timeout=2)
    with pytest.raises(TransientError, match="unreachable"):
        conn.send(reply(conn))


def test_login_is_used_and_a_refused_one_is_a_config_error() -> None:
    sink = SmtpSink(user="shop", password="right-password")
    try:
        conn = connector(sink)
        conn.send(reply(conn))
        assert len(sink.wait_for(1)) == 1
        wrong = connector(sink, smtp_password="wrong-password")
        with pytest.raises(ConfigError) as refused:
            wrong.send(reply(wrong))
        assert refused.value.auth and "SMTP login refused for shop" in str(refused.value)
    finally:
        sink.stop()


def test_no_address_to_answer_fails_permanently(smtp_sink: SmtpSink) -> None:
    conn = connector(smtp_sink)
    with pytest.raises(PermanentError, match="no email address"):
        conn.send(reply(conn, to=Identity(""), cc=()))
