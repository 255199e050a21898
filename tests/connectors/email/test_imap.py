"""The email connector's IMAP side against a real Dovecot: cursor, acknowledgement after commit,
after-import actions, UIDVALIDITY resync, backlog window, IDLE, restarts, login errors."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.dovecot import Dovecot
from connectors.base import parse_config
from connectors.email import EmailConnector
from connectors.errors import ConfigError, TransientError
from tests.support import free_port, wait_for

SHOP = "support@shop.example"


def mail(n: int | str, sender: str = "marta@example.com", subject: str | None = None) -> bytes:
    return (f"From: Marta <{sender}>\r\nTo: {SHOP}\r\nSubject: {subject or f'Question {n}'}\r\n"
            f"Message-ID: <q{n}@example.com>\r\nDate: Tue, 24 Nov 2026 09:00:00 +0000\r\n\r\n"
            f"Where is order {n}?\r\n").encode()


def connector(dovecot: Dovecot, user: str, **extra: Any) -> EmailConnector:
    values = {"address": SHOP, **dovecot.imap_settings(user), "smtp_host": "127.0.0.1", "smtp_security": "none",
              **extra}
    return EmailConnector(parse_config(EmailConnector, values))


def flags(dovecot: Dovecot, user: str, folder: str = "INBOX") -> dict[str, tuple[bytes, ...]]:
    with dovecot.client(user) as client:
        client.select_folder(folder, readonly=True)
        found = client.fetch(client.search(["ALL"]), ["FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
    return {data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode().split(":", 1)[1].strip(): data[b"FLAGS"]
            for data in found.values()}


def drain(conn: EmailConnector, cursor: dict | None) -> tuple[list[str], dict | None]:  # type: ignore[type-arg]
    ids: list[str] = []
    for batch in conn.poll(cursor):
        ids += [e.external_id for e in batch.events]
        cursor = batch.cursor
    return ids, cursor


def test_poll_imports_in_batches_and_moves_the_cursor(dovecot: Dovecot) -> None:
    user, _ = dovecot.add_user()
    for n in range(5):
        dovecot.append(user, mail(n))
    conn = connector(dovecot, user, batch_size=2)
    batches = list(conn.poll(None))
    assert [len(b.events) for b in batches] == [2, 2, 1]
    assert [e.external_id for b in batches for e in b.events] == [f"<q{n}@example.com>" for n in range(5)]
    assert batches[-1].cursor["folders"]["INBOX"]["last_uid"] == 5
    assert batches[0].events[0].sender.email == "marta@example.com"

    dovecot.append(user, mail(5))
    ids, cursor = drain(conn, batches[-1].cursor)
    assert ids == ["<q5@example.com>"]
    assert drain(conn, cursor)[0] == []  # nothing new: nothing again


def test_flagged_seen_only_after_the_batch_is_committed(dovecot: Dovecot) -> None:
    user, _ = dovecot.add_user()
    dovecot.append(user, mail(1))
    dovecot.append(user, mail(2))
    conn = connector(dovecot, user, batch_size=1)
    polling = conn.poll(None)
    first = next(polling)  # handed over, not yet committed
    assert all(b"\\Seen" not in f for f in flags(dovecot, user).values())
    polling.close()  # the worker died before committing: nothing acknowledged, cursor not saved
    assert all(b"\\Seen" not in f for f in flags(dovecot, user).values())

    ids, _ = drain(conn, None)  # the next poll starts from the saved (absent) cursor again
    assert ids == ["<q1@example.com>", "<q2@example.com>"] and first.events[0].external_id == ids[0]
    assert all(b"\\Seen" in f for f in flags(dovecot, user).values())


def test_move_and_delete_after_import(dovecot: Dovecot) -> None:
    user, _ = dovecot.add_user()
    dovecot.append(user, mail(1))
    ids, _ = drain(connector(dovecot, user, after_import="move:Imported"), None)
    assert ids == ["<q1@example.com>"]
    assert flags(dovecot, user) == {}
    assert list(flags(dovecot, user, "Imported")) == ["<q1@example.com>"]

    other, _ = dovecot.add_user()
    dovecot.append(other, mail(2))
    drain(connector(dovecot, other, after_import="delete"), None)
    assert flags(dovecot, other) == {}


def test_uidvalidity_change_resyncs_with_the_same_ids(dovecot: Dovecot) -> None:
    user, _ = dovecot.add_user()
    dovecot.append(user, mail(1), folder="Support")
    conn = connector(dovecot, user, imap_folder="Support")
    _, cursor = drain(conn, None)
    with dovecot.client(user) as client:  # the folder is recreated: new UIDVALIDITY, UIDs from 1
        client.delete_folder("Support")
        client.create_folder("Support")
    time.sleep(1.1)  # Dovecot derives UIDVALIDITY from the clock
    dovecot.append(user, mail(1), folder="Support")
    dovecot.append(user, mail(2), folder="Support")
    again, new_cursor = drain(conn, cursor)
    assert again == ["<q1@example.com>", "<q2@example.com>"]  # re-offered; the store de-duplicates by id
    assert new_cursor["folders"]["Support"]["uidvalidity"] != cursor["folders"]["Support"]["uidvalidity"]


def test_first_connection_imports_only_the_configured_window(dovecot: Dovecot) -> None:
    user, _ = dovecot.add_user()
    dovecot.append(user, mail("old"), date=datetime.now(UTC) - timedelta(days=90))
    dovecot.append(user, mail("recent"), date=datetime.now(UTC) - timedelta(days=2))
    assert drain(connector(dovecot, user, import_since_days=30), None)[0] == ["<qrecent@example.com>"]
    assert drain(connector(dovecot, user, import_since_days=None), None)[0] == [
        "<qold@example.com>", "<qrecent@example.com>"]


def test_several_folders(dovecot: Dovecot) -> None:
    user, _ = dovecot.add_user()
    dovecot.append(user, mail(1))
    dovecot.append(user, mail(2), folder="Returns")
    ids, cursor = drain(connector(dovecot, user, imap_folders=["Returns"]), None)
    assert ids == ["<q1@example.com>", "<q2@example.com>"]
    assert set(cursor["folders"]) == {"INBOX", "Returns"}


def test_a_bad_message_does_not_stop_the_mailbox(dovecot: Dovecot) -> None:
    user, _ = dovecot.add_user()
    dovecot.append(user, b"\x00\xff garbage without headers \x00" * 50)
    dovecot.append(user, mail(2))
    batch = next(iter(connector(dovecot, user).poll(None)))
    broken, fine = batch.events
    assert b"garbage without headers" in broken.raw  # kept as the server has it (Dovecot turns NUL to 0x80)
    assert broken.sender.external_id == "unknown" and fine.external_id == "<q2@example.com>"


def test_idle_tells_of_new_mail_within_two_seconds_and_survives_a_restart(dovecot: Dovecot) -> None:
    user, _ = dovecot.add_user()
    conn = connector(dovecot, user)
    stop, heard = threading.Event(), []
    watcher = threading.Thread(target=conn.watch, args=(stop, lambda: heard.append(time.monotonic())))
    watcher.start()
    try:
        time.sleep(1.0)  # connected and idling
        sent = time.monotonic()
        dovecot.append(user, mail(1))
        wait_for(lambda: heard, timeout=5, what="IDLE to report the new mail")
        assert heard[0] - sent < 2.0

        heard.clear()
        dovecot.restart()
        wait_for(lambda: heard, timeout=15, what="a notification after reconnecting")  # mail may have come
        heard.clear()
        time.sleep(0.5)
        sent = time.monotonic()
        dovecot.append(user, mail(2))
        wait_for(lambda: heard, timeout=5, what="IDLE after the restart")
        assert heard[0] - sent < 2.0
    finally:
        stop.set()
        watcher.join(10)
    assert not watcher.is_alive()


def test_without_idle_watch_just_waits(dovecot: Dovecot) -> None:
    user, _ = dovecot.add_user()
    stop = threading.Event()
    watcher = threading.Thread(target=connector(dovecot, user, use_idle=False).watch, args=(stop, lambda: None))
    watcher.start()
    stop.set()
    watcher.join(5)
    assert not watcher.is_alive()


def test_wrong_password_and_unreachable_server(dovecot: Dovecot) -> None:
    user, _ = dovecot.add_user()
    wrong = connector(dovecot, user, imap_password="not-the-password")
    with pytest.raises(ConfigError) as refused:
        list(wrong.poll(None))
    assert refused.value.auth and f"IMAP login refused for {user}" in str(refused.value)
    with pytest.raises(ConfigError) as checked:
        wrong.check()
    assert str(checked.value).startswith("IMAP: ") and checked.value.auth

    nowhere = connector(dovecot, user, imap_port=free_port(), timeout=2)
    with pytest.raises(TransientError, match="unreachable"):
        list(nowhere.poll(None))
    with pytest.raises(ConfigError, match="does not exist"):
        list(connector(dovecot, user, imap_folder="Nope").poll(None))
