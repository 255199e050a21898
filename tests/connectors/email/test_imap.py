"""The email connector's IMAP side against a real Dovecot: cursor, acknowledgement after commit,
after-import actions, UIDVALIDITY resync, backlog window, IDLE, restarts, login errors; and an old
server (Dovecot announcing neither IDLE nor MOVE nor UIDPLUS) for the fallbacks."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.base import parse_config
from connectors.email import EmailConnector
from connectors.errors import ConfigError, TransientError
from tests.fakes.dovecot import Dovecot, start_dovecot
from tests.support import free_port, wait_for

SHOP = "support@shop.example"


def mail(n: int | str, sender: str = "marta@example.com", subject: str | None = None, dated: bool = True) -> bytes:
    date = "Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n" if dated else ""
    return (f"From: Marta <{sender}>\r\nTo: {SHOP}\r\nSubject: {subject or f'Question {n}'}\r\n"
            f"Message-ID: <q{n}@example.com>\r\n{date}\r\nWhere is order {n}?\r\n").encode()


@pytest.fixture(scope="module")
def old_dovecot():  # type: ignore[no-untyped-def]
    """A Dovecot that announces what a plain IMAP4rev1 server does: no IDLE, MOVE or UIDPLUS."""
    server = start_dovecot(capabilities="IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE")
    yield server
    server.close()


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
    user, _ = dovecot.new_mailbox()
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


def test_batches_are_cut_short_by_size(dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors.email import imap

    user, _ = dovecot.new_mailbox()
    for n in range(3):
        dovecot.append(user, mail(n) + b"x" * 3000 + b"\r\n")
    monkeypatch.setattr(imap, "BATCH_BYTES", 7000)  # two of these mails, not three
    batches = list(connector(dovecot, user, batch_size=10).poll(None))
    assert [[e.external_id for e in b.events] for b in batches] == [
        ["<q0@example.com>", "<q1@example.com>"], ["<q2@example.com>"]]
    assert [b.cursor["folders"]["INBOX"]["last_uid"] for b in batches] == [2, 3]


def test_flagged_seen_only_after_the_batch_is_committed(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_mailbox()
    dovecot.append(user, mail(1))
    dovecot.append(user, mail(2))
    conn = connector(dovecot, user, batch_size=1)
    polling = conn.poll(None)
    first = next(polling)  # handed over, not yet committed
    assert all(b"\\Seen" not in f for f in flags(dovecot, user).values())
    polling.close()  # the worker died before committing: nothing acknowledged, cursor not saved
    assert all(b"\\Seen" not in f for f in flags(dovecot, user).values())

    polling = conn.poll(None)  # the next poll starts from the saved (absent) cursor again
    assert next(polling).events == first.events
    second = next(polling)  # resuming acknowledged the first batch, and only that one
    assert {k: b"\\Seen" in f for k, f in flags(dovecot, user).items()} == {
        "<q1@example.com>": True, "<q2@example.com>": False}
    assert [e.external_id for e in second.events] == ["<q2@example.com>"]
    assert list(polling) == []
    assert all(b"\\Seen" in f for f in flags(dovecot, user).values())
    assert drain(conn, second.cursor)[0] == []  # \\Seen or not, the cursor keeps them from coming again


def test_move_and_delete_after_import(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_mailbox()
    dovecot.append(user, mail(1))
    ids, _ = drain(connector(dovecot, user, after_import="move:Archive"), None)  # Archive is made
    assert ids == ["<q1@example.com>"]
    assert flags(dovecot, user) == {}
    assert list(flags(dovecot, user, "Archive")) == ["<q1@example.com>"]

    other, _ = dovecot.new_mailbox()
    dovecot.append(other, mail(2))
    drain(connector(dovecot, other, after_import="delete"), None)
    assert flags(dovecot, other) == {}


def test_uidvalidity_change_resyncs_with_the_same_ids(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_mailbox()
    dovecot.append(user, mail(1), folder="Support")
    conn = connector(dovecot, user, imap_folder="Support")
    first, cursor = drain(conn, None)
    dovecot.recreate_folder(user, "Support")  # new UIDVALIDITY, UIDs from 1 again
    dovecot.append(user, mail(1), folder="Support")
    dovecot.append(user, mail(2), folder="Support")
    again, new_cursor = drain(conn, cursor)
    assert again == [*first, "<q2@example.com>"]  # re-offered with the same id: the store de-duplicates
    assert new_cursor["folders"]["Support"]["uidvalidity"] != cursor["folders"]["Support"]["uidvalidity"]


def test_first_connection_imports_only_the_configured_window(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_mailbox()
    dovecot.append(user, mail("old"), date=datetime.now(UTC) - timedelta(days=90))
    dovecot.append(user, mail("recent"), date=datetime.now(UTC) - timedelta(days=2))
    assert drain(connector(dovecot, user, import_since_days=30), None)[0] == ["<qrecent@example.com>"]
    assert drain(connector(dovecot, user, import_since_days=None), None)[0] == [
        "<qold@example.com>", "<qrecent@example.com>"]


def test_old_mail_the_window_left_out_stays_out(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_mailbox()
    now = datetime.now(UTC)
    dovecot.append(user, mail("recent"), date=now - timedelta(days=1))
    dovecot.append(user, mail("old"), date=now - timedelta(days=400))  # a higher UID, but too old
    conn = connector(dovecot, user, import_since_days=30)
    ids, cursor = drain(conn, None)
    assert ids == ["<qrecent@example.com>"]
    dovecot.append(user, mail("new"))
    assert drain(conn, cursor)[0] == ["<qnew@example.com>"]


def test_without_a_date_header_the_servers_arrival_time_is_used(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_mailbox()
    arrived = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    dovecot.append(user, mail(1, dated=False), date=arrived)
    dovecot.append(user, mail(2), date=arrived)
    undated, dated = next(iter(connector(dovecot, user, import_since_days=None).poll(None))).events
    assert undated.sent_at == arrived
    assert dated.sent_at == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # the Date header wins


def test_several_folders(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_mailbox()
    dovecot.append(user, mail(1))
    dovecot.append(user, mail(2), folder="Returns")
    ids, cursor = drain(connector(dovecot, user, imap_folders=["Returns"]), None)
    assert ids == ["<q1@example.com>", "<q2@example.com>"]
    assert set(cursor["folders"]) == {"INBOX", "Returns"}


def test_a_bad_message_does_not_stop_the_mailbox(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_mailbox()
    dovecot.append(user, b"\x00\xff garbage without headers \x00" * 50)
    dovecot.append(user, mail(2))
    batch = next(iter(connector(dovecot, user).poll(None)))
    broken, fine = batch.events
    assert b"garbage without headers" in broken.raw  # kept as the server has it (Dovecot turns NUL to 0x80)
    assert broken.sender.external_id == "unknown" and fine.external_id == "<q2@example.com>"


def test_idle_tells_of_new_mail_within_two_seconds_and_survives_a_restart(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_mailbox()
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


def test_a_failing_notify_does_not_end_the_watch(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_mailbox()
    stop, calls = threading.Event(), []

    def notify() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("database down")

    watcher = threading.Thread(target=connector(dovecot, user).watch, args=(stop, notify))
    watcher.start()
    try:
        wait_for(lambda: calls, timeout=5, what="the first notification")
        time.sleep(0.3)
        dovecot.append(user, mail(1))
        wait_for(lambda: len(calls) >= 2, timeout=5, what="a notification after a failed one")
    finally:
        stop.set()
        watcher.join(5)
    assert not watcher.is_alive()


@pytest.mark.parametrize("server", ["without IDLE", "use_idle off"])
def test_without_idle_watch_waits_for_stop_and_polling_covers(
    server: str, dovecot: Dovecot, old_dovecot: Dovecot
) -> None:
    imap = old_dovecot if server == "without IDLE" else dovecot
    user, _ = imap.new_mailbox()
    conn = connector(imap, user, use_idle=server != "use_idle off")
    stop, heard = threading.Event(), []
    watcher = threading.Thread(target=conn.watch, args=(stop, lambda: heard.append(1)))
    watcher.start()
    imap.append(user, mail(1))
    time.sleep(1.5)
    assert watcher.is_alive() and heard == []  # returning early would have the scheduler restart it
    stop.set()
    watcher.join(2)
    assert not watcher.is_alive()
    assert drain(conn, None)[0] == ["<q1@example.com>"]


def test_move_and_delete_without_move_or_uidplus(old_dovecot: Dovecot) -> None:
    user, _ = old_dovecot.new_mailbox()
    old_dovecot.append(user, mail(1))
    old_dovecot.append(user, mail(2))
    conn = connector(old_dovecot, user, after_import="move:Done", batch_size=1)
    polling = conn.poll(None)
    next(polling)
    next(polling)  # the first one is moved (COPY, \\Deleted, EXPUNGE), the second not yet
    assert list(flags(old_dovecot, user)) == ["<q2@example.com>"]
    assert list(flags(old_dovecot, user, "Done")) == ["<q1@example.com>"]
    assert list(polling) == []
    assert flags(old_dovecot, user) == {}

    old_dovecot.append(user, mail(3))
    drain(connector(old_dovecot, user, after_import="delete"), None)
    assert flags(old_dovecot, user) == {}


def test_wrong_password_and_unreachable_server(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_mailbox()
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
    with pytest.raises(ConfigError, match=r"^IMAP: IMAP folder 'Nope' does not exist"):
        connector(dovecot, user, imap_folder="Nope").check()
