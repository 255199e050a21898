"""Email end to end, on the embedded default and on PostgreSQL + Redis: a real Dovecot and a real
SMTP server; the channel created through the API is all it takes for mail to flow."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from typing import Any

import pytest
from sqlalchemy import func, select

import workers
from store.sql import conversations, messages, participants
from tests.fakes.dovecot_server import Dovecot
from tests.fakes.smtp import SmtpSink
from tests.support import Running, wait_for

SHOP = "support@shop.example"


def customer_mail(subject: str, text: str, *, sender: str = "Zofia Żółkiewska <zofia@example.pl>",
                  cc: str | None = None, reply_to: EmailMessage | None = None,
                  message_id: str | None = None, charset: str = "iso-8859-2") -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = SHOP
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = message_id or make_msgid(domain="example.pl")
    if reply_to is not None:
        msg["In-Reply-To"] = reply_to["Message-ID"]
        msg["References"] = f"{reply_to['References'] or ''} {reply_to['Message-ID']}".strip()
    msg.set_content(text, charset=charset)
    return msg.as_bytes()


def email_channel(desk: Running, dovecot: Dovecot, sink: SmtpSink, **extra: Any) -> tuple[int, str]:
    user, _ = dovecot.add_user()
    channel = desk.ok("POST", "/channels", json={"kind": "email", "name": "Support mailbox", "config": {
        "address": SHOP, **dovecot.imap_settings(user), **sink.settings(), **extra}})
    assert channel["status"] == "ok" and "imap_password" not in channel["config"]
    return channel["id"], user


def conversations_of(desk: Running) -> list[dict[str, Any]]:
    return desk.ok("GET", "/conversations")["items"]


def test_mail_in_reply_out_answer_joins(omnidesk: Running, dovecot: Dovecot, smtp_sink: SmtpSink) -> None:
    agent = omnidesk.agent("Jan Kowalski", languages=[])
    _, user = email_channel(omnidesk, dovecot, smtp_sink)
    dovecot.append(user, customer_mail("Gdzie jest moja paczka?", "Zamówiłam buty tydzień temu. Kiedy dotrą?",
                                       message_id="<first@example.pl>"))
    conv = wait_for(lambda: (items := conversations_of(omnidesk)) and items[0]["assignee_id"] and items[0],
                    timeout=15, what="the mail to become an assigned conversation")
    assert conv["subject"] == "Gdzie jest moja paczka?" and conv["assignee_id"] == agent["id"]
    detail = omnidesk.ok("GET", f"/conversations/{conv['id']}")
    assert detail["contact"]["email"] == "zofia@example.pl" and detail["contact"]["name"] == "Zofia Żółkiewska"
    assert detail["messages"][0]["text"].strip() == "Zamówiłam buty tydzień temu. Kiedy dotrą?"

    omnidesk.ok("POST", f"/conversations/{conv['id']}/messages", token=agent["token"],
                json={"text": "Dzień dobry, paczka wyjechała dziś."})
    [sent] = smtp_sink.wait_for(1, timeout=15)
    out = sent.message
    assert sent.rcpt_tos == ["zofia@example.pl"]
    assert out["In-Reply-To"] == "<first@example.pl>" and "<first@example.pl>" in out["References"]
    assert out["Subject"] == f"Re: Gdzie jest moja paczka? [#{conv['number']}]"
    wait_for(lambda: omnidesk.ok("GET", f"/conversations/{conv['id']}")["messages"][-1]["status"] == "sent",
             what="the reply marked sent")

    # Her answer to our reply, with her colleague in Cc, joins the same conversation ...
    dovecot.append(user, customer_mail(out["Subject"], "Dziękuję! A faktura?", reply_to=out,
                                       cc=f"Piotr <piotr@example.pl>, {SHOP}"))
    wait_for(lambda: len(omnidesk.ok("GET", f"/conversations/{conv['id']}")["messages"]) == 3, timeout=15,
             what="the customer's answer in the same conversation")
    # ... and so does the colleague's, who only names the ticket number.
    dovecot.append(user, customer_mail(f"Faktura [#{conv['number']}]", "Proszę o fakturę na firmę.",
                                       sender="Piotr <piotr@example.pl>"))
    wait_for(lambda: len(omnidesk.ok("GET", f"/conversations/{conv['id']}")["messages"]) == 4, timeout=15,
             what="the Cc'd colleague's mail in the same conversation")
    assert len(conversations_of(omnidesk)) == 1
    with omnidesk.engine.connect() as conn:
        emails = set(conn.execute(select(participants.c.email)).scalars())
    assert emails == {"piotr@example.pl"}  # our own address is never a participant

    # The next reply goes to her and to Piotr, threaded under her last mail.
    omnidesk.ok("POST", f"/conversations/{conv['id']}/messages", token=agent["token"], json={"text": "Wysłana."})
    second = smtp_sink.wait_for(2, timeout=15)[1]
    assert sorted(second.rcpt_tos) == ["piotr@example.pl", "zofia@example.pl"]
    assert out["Message-ID"] in second.message["References"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_new_mail_shows_within_two_seconds_with_idle(omnidesk: Running, dovecot: Dovecot, smtp_sink: SmtpSink) -> None:
    _, user = email_channel(omnidesk, dovecot, smtp_sink)
    dovecot.append(user, customer_mail("first", "hello"))
    wait_for(lambda: conversations_of(omnidesk), timeout=15, what="the first mail")
    time.sleep(2.0)  # the scheduler's watcher is idling by now
    for n in range(3):
        appended = time.monotonic()
        dovecot.append(user, customer_mail(f"mail {n}", "where is it?"))
        wait_for(lambda n=n: len(conversations_of(omnidesk)) == n + 2, timeout=10, interval=0.02,
                 what="IDLE to bring the mail in")
        assert time.monotonic() - appended < 2.0


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_duplicates_and_racing_pollers_store_once(omnidesk: Running, dovecot: Dovecot, smtp_sink: SmtpSink) -> None:
    channel_id, user = email_channel(omnidesk, dovecot, smtp_sink)
    same = customer_mail("twice", "the same mail, delivered twice", message_id="<twice@example.pl>")
    dovecot.append(user, same)
    dovecot.append(user, same)
    for n in range(20):
        dovecot.append(user, customer_mail(f"race {n}", "x"))
    # Two pollers at once, as two workers would: the lock lets one work; the other returns.
    threads = [threading.Thread(target=workers.poll_channel.fn, args=(channel_id,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # And two imports that bypass the lock entirely (the unique Message-ID is the second guard).
    from store import channels as channel_store
    from store.inbound import record_inbound

    row = channel_store.load_channel(omnidesk.engine, channel_id)

    def rogue() -> None:
        for batch in channel_store.connector_for(row).poll(None):
            record_inbound(omnidesk.engine, channel_id, batch.events)

    rogues = [threading.Thread(target=rogue) for _ in range(2)]
    for thread in rogues:
        thread.start()
    for thread in rogues:
        thread.join(30)

    def stored() -> int:
        with omnidesk.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(messages)).scalar_one()

    wait_for(lambda: stored() == 21, timeout=15, what="21 distinct mails stored")
    time.sleep(1.0)
    assert stored() == 21
    with omnidesk.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(conversations)).scalar_one() == 21


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_bounce_fails_our_reply_instead_of_opening_a_conversation(
    omnidesk: Running, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    agent = omnidesk.agent("Ana")
    _, user = email_channel(omnidesk, dovecot, smtp_sink)
    dovecot.append(user, customer_mail("Pedido", "¿Dónde está?", sender="José <jose@nowhere.example>",
                                       charset="windows-1252"))
    conv = wait_for(lambda: (items := conversations_of(omnidesk)) and items[0]["assignee_id"] and items[0],
                    timeout=15)
    reply = omnidesk.ok("POST", f"/conversations/{conv['id']}/messages", token=agent["token"], json={"text": "Hoy."})
    ours = smtp_sink.wait_for(1, timeout=15)[0].message
    bounce = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.shop.example>\r\n"
        f"To: {SHOP}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce-1@mx.shop.example>\r\nAuto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message could not be"
        " delivered.\r\n\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.shop.example\r\n\r\n"
        "Final-Recipient: rfc822; jose@nowhere.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <jose@nowhere.example>: Recipient address rejected: User unknown\r\n\r\n"
        f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {ours['Message-ID']}\r\n"
        f"From: {SHOP}\r\nTo: jose@nowhere.example\r\n\r\n--B--\r\n"
    ).encode()
    dovecot.append(user, bounce)

    def reply_state() -> dict[str, Any] | None:
        messages = omnidesk.ok("GET", f"/conversations/{conv['id']}")["messages"]
        found = next(m for m in messages if m["id"] == reply["id"])
        return found if found["status"] == "failed" else None

    failed = wait_for(reply_state, timeout=15, what="the bounce to fail the reply")
    assert "5.1.1" in failed["status_reason"] and "User unknown" in failed["status_reason"]
    assert len(conversations_of(omnidesk)) == 1


@pytest.mark.parametrize("backend", ["sqlite"])
def test_bad_logins_are_refused_at_creation_and_mark_the_channel_later(
    omnidesk: Running, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    user, _ = dovecot.add_user()
    config = {"address": SHOP, **dovecot.imap_settings(user), **smtp_sink.settings()}
    refused = omnidesk.api("POST", "/channels", json={"kind": "email", "name": "x", "config": {
        **config, "imap_password": "wrong"}})
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith(f"IMAP: IMAP login refused for {user}")
    missing = omnidesk.api("POST", "/channels", json={"kind": "email", "name": "x", "config": {
        **config, "imap_folder": "Nope"}})
    assert missing.status_code == 422 and "'Nope' does not exist" in missing.json()["detail"]

    channel_id, _ = email_channel(omnidesk, dovecot, smtp_sink)
    # The password changes at the provider: saved without verifying, as an admin might.
    omnidesk.ok("PATCH", f"/channels/{channel_id}?verify=false", json={"config": {"imap_password": "changed"}})
    channel = wait_for(lambda: (c := omnidesk.ok("GET", f"/channels/{channel_id}"))["status"] == "error" and c,
                       timeout=15, what="the channel in error")
    assert "login refused" in channel["last_error"]

    def backing_off() -> bool:  # (a poll that began before the change and failed polls again at once)
        from store.sql import channels

        with omnidesk.engine.connect() as conn:
            row = conn.execute(select(channels).where(channels.c.id == channel_id)).one()
        return row.next_poll_at > datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=10)

    wait_for(backing_off, timeout=10, what="the next poll put off (backing off, not hammering)")
    failed = omnidesk.ok("GET", "/jobs/failed")["items"]
    assert any(f["job"] == "poll" and f["channel_id"] == channel_id for f in failed)
