"""The email connector's SMTP side against a real SMTP server (aiosmtpd): threading headers, the
ticket number, encodings, attachments, signature, loop marks, and the server's refusals; the
settings; ``check()`` of both sides."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.base import Attachment, Identity, OutboundMessage, parse_config
from connectors.email import EmailConnector
from connectors.email.compose import subject_for
from connectors.email.config import EmailConfig
from connectors.email.ids import is_own_message_id
from connectors.errors import ConfigError, PermanentError, TransientError
from tests.fakes.dovecot import Dovecot
from tests.fakes.smtp import SmtpSink
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


def test_the_agents_html_long_thread_and_awkward_names(smtp_sink: SmtpSink) -> None:
    conn = connector(smtp_sink, from_name='Botiga, "la" Núria')
    gmail_ids = tuple(f"<CAKz+TdRn8zN8Q1yZ0v5o_HmPZ0F3UdhXT0=kqY2GB_{n:04d}pZ0vz4+A@mail.gmail.com>" for n in range(30))
    out = reply(conn, to=Identity("w@example.pl", name='Żółkiewska, Zofia "Zosia"', email="w@example.pl"),
                html='<p>Paczka <b>wyjechała</b>: <img src="cid:map1"></p>', in_reply_to=gmail_ids[-1],
                references=gmail_ids, cc=(Identity(SHOP), Identity("not an address"), Identity("jan@example.pl")),
                attachments=(Attachment("map.png", "image/png", b"\x89PNG map", content_id="map1", inline=True),))
    conn.send(out)
    got = smtp_sink.wait_for(1)[0]
    msg = got.message
    assert msg["From"].addresses[0].display_name == 'Botiga, "la" Núria'
    [to] = msg["To"].addresses
    assert (to.display_name, to.addr_spec) == ('Żółkiewska, Zofia "Zosia"', "w@example.pl")
    assert [a.addr_spec for a in msg["Cc"].addresses] == ["jan@example.pl"]  # not the shop, not garbage
    assert sorted(got.rcpt_tos) == ["jan@example.pl", "w@example.pl"]
    # ids are never RFC 2047-encoded, whatever their length: clients thread by them verbatim
    assert msg["In-Reply-To"] == gmail_ids[-1]
    assert msg["References"].split() == list(gmail_ids[-20:])
    assert b"=?utf-8?q?=3CCAKz" not in got.raw
    html = msg.get_body(("html",))
    assert "<b>wyjechała</b>" in html.get_content()
    assert "paczka wyjechała dziś." in msg.get_body(("plain",)).get_content()  # the text part: message.text
    [image] = [part for part in msg.walk() if part.get_content_type() == "image/png"]
    assert image["Content-ID"] == "<map1>" and image.get_content() == b"\x89PNG map"
    assert list(msg.iter_attachments()) == []  # shown in the HTML, not a separate attachment


def test_some_recipients_refused_is_sent_all_refused_is_not(smtp_sink: SmtpSink) -> None:
    conn = connector(smtp_sink)
    smtp_sink.refuse_rcpt("jan@example.pl", 550, "5.1.1 <jan@example.pl>: User unknown")
    assert conn.send(reply(conn)).status == "sent"  # Zofia got it; Jan's refusal is only logged
    assert smtp_sink.wait_for(1)[0].rcpt_tos == ["zofia@example.pl"]

    smtp_sink.refuse_rcpt("zofia@example.pl", 450, "4.2.1 Mailbox busy")
    with pytest.raises(TransientError, match=r"450 4\.2\.1 Mailbox busy"):  # Zofia may take it later
        conn.send(reply(conn))
    smtp_sink.refuse_rcpt("zofia@example.pl", 550, "5.7.1 Blocked")
    with pytest.raises(PermanentError, match=r"550 5\.7\.1 Blocked"):
        conn.send(reply(conn))


def test_addresses_that_cannot_be_written_fail_permanently(smtp_sink: SmtpSink) -> None:
    conn = connector(smtp_sink)
    with pytest.raises(PermanentError, match="not one"):
        conn.send(reply(conn, to=Identity("whatsapp:+48600000000"), cc=()))
    with pytest.raises(PermanentError, match="non-ASCII"):
        conn.send(reply(conn, to=Identity("zoś@example.pl"), cc=()))
    conn.send(reply(conn, to=Identity("zosia@żółw.example.pl"), cc=()))  # an IDN domain is fine
    assert smtp_sink.wait_for(1)[0].rcpt_tos == ["zosia@xn--w-uga1v8h.example.pl"]


def test_settings_defaults_follow_their_source() -> None:
    config = EmailConfig(address="help@shop.example", imap_host="imap.shop.example", imap_password="pw",
                         smtp_host="smtp.shop.example")
    assert (config.imap_port, config.smtp_port, config.imap_username, config.smtp_username) == (
        993, 587, "help@shop.example", "help@shop.example")
    assert config.smtp_secret == "pw" and EmailConfig.secret_fields() == {"imap_password", "smtp_password"}
    saved = config.model_dump(mode="json")  # derived values are saved as "not given" ...
    assert saved["imap_port"] is None and saved["imap_username"] is None
    changed = EmailConfig.model_validate({**saved, "imap_password": "pw", "imap_security": "starttls",
                                          "smtp_security": "tls", "address": "hilfe@shop.example"})
    assert (changed.imap_port, changed.smtp_port, changed.smtp_username) == (143, 465, "hilfe@shop.example")
    given = EmailConfig(address="help@shop.example", imap_host="h", imap_password="pw", smtp_host="s",
                        imap_port=1143, smtp_username="relay")
    assert given.model_dump()["imap_port"] == 1143 and given.model_dump()["smtp_username"] == "relay"
    with pytest.raises(ConfigError, match=r"address: .*not an email address"):
        parse_config(EmailConnector, {"address": "help", "imap_host": "h", "imap_password": "p", "smtp_host": "s"})
    with pytest.raises(ConfigError, match="after_import"):
        parse_config(EmailConnector, {"address": "a@b.cd", "imap_host": "h", "imap_password": "p", "smtp_host": "s",
                                      "after_import": "move:"})
    with pytest.raises(ConfigError, match="a folder it imports from"):
        parse_config(EmailConnector, {"address": "a@b.cd", "imap_host": "h", "imap_password": "p", "smtp_host": "s",
                                      "imap_folders": ["Done"], "after_import": "move:Done"})


def test_check_names_the_side_that_failed(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_mailbox()
    sink = SmtpSink(user="shop", password="right-password")
    try:
        def channel(**extra: Any) -> EmailConnector:
            values = {"address": SHOP, **dovecot.imap_settings(user), **sink.settings(), **extra}
            return EmailConnector(parse_config(EmailConnector, values))

        channel().check()  # both logins work
        with pytest.raises(ConfigError) as imap_refused:
            channel(imap_password="wrong").check()
        assert str(imap_refused.value).startswith(f"IMAP: IMAP login refused for {user}") and imap_refused.value.auth
        with pytest.raises(ConfigError) as smtp_refused:
            channel(smtp_password="wrong").check()
        assert str(smtp_refused.value).startswith("SMTP: SMTP login refused for shop") and smtp_refused.value.auth
        with pytest.raises(ConfigError, match=r"^SMTP: .*unreachable"):
            channel(smtp_port=free_port(), timeout=2).check()
    finally:
        sink.stop()
