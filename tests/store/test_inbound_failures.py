"""A failed store, told apart by kind, on SQLite and PostgreSQL. A lost connection is not the
message's fault: it is retried on a fresh connection, else raised (the provider retries, the
poller keeps its cursor), and the message ends stored once, intact, in the customer's
conversation - never as an empty record. Only a message whose content the database refuses is
kept as a bare record of its raw source, its parse error naming the kind of refusal and holding
no SQL; the other messages of its batch are stored as they are."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.exc import OperationalError

from connectors.base import Attachment, Identity, InboundMessage
from store.inbound import record_inbound
from store.sql import channels, messages
from tests import support
from tests.store.test_inbound import _channel

SECRET = "my card number is 4111"


def _message(external_id: str, body: str | None = None) -> InboundMessage:
    return InboundMessage(external_id=external_id, sender=Identity("cust", name="Ann"), thread_key="chat-1",
                          text=body or f"text of {external_id}", raw=f'{{"id": "{external_id}"}}'.encode())


def _rows(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {row.external_id: row for row in conn.execute(select(messages)).all()}


REFUSE_PG = ["""
CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF substr(NEW.text, 1, 9) = 'REFUSE-ME' THEN RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation'; END IF;
    RETURN NEW;
END $$
""", "CREATE TRIGGER refuse BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION refuse()"]
REFUSE_SQLITE = ["""
CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN substr(NEW.text, 1, 9) = 'REFUSE-ME'
BEGIN SELECT RAISE(ABORT, 'refused'); END
"""]


@pytest.mark.parametrize(("body", "kind"), [
    (f"{SECRET} \ud800", "UnicodeEncodeError"),  # a lone surrogate (JSON "\\ud800"): not valid Unicode
    (f"REFUSE-ME {SECRET}", "IntegrityError"),  # a constraint of the database (a trigger, here) says no
])
def test_a_refused_message_becomes_a_bare_record_and_the_others_are_stored(
        store_engine: Engine, caplog: pytest.LogCaptureFixture, body: str, kind: str) -> None:
    channel_id = _channel(store_engine)
    with store_engine.begin() as conn:
        for ddl in REFUSE_PG if store_engine.dialect.name == "postgresql" else REFUSE_SQLITE:
            conn.exec_driver_sql(ddl)
    [first] = record_inbound(store_engine, channel_id, [_message("m0")])
    batch = [_message("m1"), _message("m2"), _message("bad", body), _message("m3"), _message("m4")]
    results = record_inbound(store_engine, channel_id, batch, cursor={"offset": 5})
    assert all(r.message_id is not None and not r.duplicate for r in results)
    rows = _rows(store_engine)
    for n in range(5):
        assert rows[f"m{n}"].text == f"text of m{n}" and rows[f"m{n}"].parse_error is None
        assert rows[f"m{n}"].conversation_id == first.conversation_id
    bare = rows["bad"]
    assert bare.text == "" and bare.raw == b'{"id": "bad"}'
    assert bare.conversation_id == first.conversation_id  # the customer's conversation, not one of its own
    assert f"({kind}" in bare.parse_error and "refused" in bare.parse_error
    for leak in ("SQL", "INSERT", "SELECT", "refuse()", SECRET, "4111"):
        assert leak not in bare.parse_error
        assert leak not in caplog.text
    with store_engine.connect() as conn:
        assert conn.execute(select(channels.c.cursor).where(channels.c.id == channel_id)).scalar() == {"offset": 5}
    # The provider sends it all again: every message, the refused one too, is known.
    again = record_inbound(store_engine, channel_id, batch)
    assert [r.duplicate for r in again] == [True] * 5
    assert [r.message_id for r in again] == [r.message_id for r in results]


@pytest.fixture
def lost_connections(store_engine: Engine) -> Iterator[dict[str, int]]:
    """Lose the connection at the next ``fail`` inserts of messages: on PostgreSQL its backend is
    terminated from another connection (the insert then fails as on a real drop), on SQLite the
    driver's OperationalError is raised. Set ``fail`` to the number of drops wanted."""
    state = {"fail": 0, "lost": 0}
    admin = support.pg_admin() if store_engine.dialect.name == "postgresql" else None

    def drop(conn, cursor, statement, *_):  # type: ignore[no-untyped-def]
        if state["fail"] <= 0 or not statement.lstrip().upper().startswith("INSERT INTO MESSAGES"):
            return
        state["fail"] -= 1
        state["lost"] += 1
        if admin is None:
            raise sqlite3.OperationalError("disk I/O error")
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (cursor.connection.info.backend_pid,))

    event.listen(store_engine, "before_cursor_execute", drop)
    yield state
    event.remove(store_engine, "before_cursor_execute", drop)
    if admin is not None:
        admin.close()


def test_a_connection_lost_once_is_retried_and_the_message_stored_intact(
        store_engine: Engine, lost_connections: dict[str, int]) -> None:
    channel_id = _channel(store_engine)
    [first] = record_inbound(store_engine, channel_id, [_message("m0")])
    lost_connections["fail"] = 1
    [second] = record_inbound(store_engine, channel_id, [_message("m1", SECRET)], cursor={"offset": 2})
    assert lost_connections["lost"] == 1
    rows = _rows(store_engine)
    assert len(rows) == 2 and second.message_id == rows["m1"].id
    assert (rows["m1"].text, rows["m1"].parse_error, rows["m1"].conversation_id) == (SECRET, None,
                                                                                    first.conversation_id)


def test_a_connection_that_stays_down_raises_and_stores_nothing_bare(
        store_engine: Engine, lost_connections: dict[str, int], caplog: pytest.LogCaptureFixture) -> None:
    channel_id = _channel(store_engine)
    [first] = record_inbound(store_engine, channel_id, [_message("m0")])
    lost_connections["fail"] = 1000
    batch = [_message("m1", SECRET), _message("m2")]
    with pytest.raises(OperationalError):
        record_inbound(store_engine, channel_id, batch, cursor={"offset": 3})
    assert lost_connections["lost"] == 2  # the batch and its one retry; no message stored alone
    assert set(_rows(store_engine)) == {"m0"}  # nothing stored, above all no empty record
    with store_engine.connect() as conn:
        assert conn.execute(select(channels.c.cursor).where(channels.c.id == channel_id)).scalar() is None
    assert SECRET not in caplog.text
    # The connection is back; the provider (or the poller) tries again.
    lost_connections["fail"] = 0
    results = record_inbound(store_engine, channel_id, batch, cursor={"offset": 3})
    assert not any(r.duplicate for r in results)
    rows = _rows(store_engine)
    assert set(rows) == {"m0", "m1", "m2"}
    assert rows["m1"].text == SECRET and rows["m1"].parse_error is None
    assert {rows["m1"].conversation_id, rows["m2"].conversation_id} == {first.conversation_id}


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_connections_killed_between_two_stores_are_replaced(store_engine: Engine) -> None:
    """The server dropped every pooled connection (a restart, a failover) between two messages."""
    channel_id = _channel(store_engine)
    [first] = record_inbound(store_engine, channel_id, [_message("m0")])
    with store_engine.connect() as conn:
        database = conn.execute(text("SELECT current_database()")).scalar()
    with support.pg_admin() as admin:
        killed = admin.execute("SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                               "WHERE datname = %s AND pid <> pg_backend_pid()", (database,)).fetchone()[0]
    assert killed >= 1
    [second] = record_inbound(store_engine, channel_id, [_message("m1")])
    assert second.conversation_id == first.conversation_id
    with store_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(messages).where(messages.c.parse_error.is_not(None))
                            ).scalar() == 0
    assert _rows(store_engine)["m1"].text == "text of m1"


def test_a_fault_of_ours_with_one_message_is_raised_after_the_others_are_stored(
        store_engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    """Not the database's refusal (an attachment without its bytes, which the code cannot even
    measure): no bare record hides it; it is raised, the cursor stays, the others are stored."""
    channel_id = _channel(store_engine)
    broken = dataclasses.replace(_message("bad", SECRET), attachments=(Attachment("a.pdf", "application/pdf",
                                                                                  None),))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        record_inbound(store_engine, channel_id, [_message("m1"), broken, _message("m2")], cursor={"offset": 3})
    rows = _rows(store_engine)
    assert set(rows) == {"m1", "m2"} and rows["m2"].text == "text of m2"
    with store_engine.connect() as conn:
        assert conn.execute(select(channels.c.cursor).where(channels.c.id == channel_id)).scalar() is None
    assert SECRET not in caplog.text


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_batch_that_deadlocks_twice_is_stored_one_by_one(store_engine: Engine,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """Another transaction holds the conversation the batch must write to and, twice, asks for a
    new sender's identity the batch has just inserted: two real deadlocks, each detected by the
    batch's session (the other's deadlock_timeout is a minute). The batch is tried once more,
    then stored one message at a time once the other has gone: every message once, none bare."""
    channel_id = _channel(store_engine)
    with store_engine.connect() as conn:
        database = conn.execute(text("SELECT current_database()")).scalar()
    [ann] = record_inbound(store_engine, channel_id, [_msg_from("a0", "ann", "t-ann")])
    batch = [_msg_from("s0-1", "s0", "t-s0"), _msg_from("a1", "ann", "t-ann"), _msg_from("s9-1", "s9", "t-s9")]
    done: list[Any] = []
    writer = threading.Thread(target=lambda: done.append(record_inbound(store_engine, channel_id, batch)))
    watch, other = support.pg_admin(database), support.pg_admin(database)
    other.execute("SET deadlock_timeout = '60s'")
    other.execute("BEGIN")
    other.execute("UPDATE conversations SET updated_at = updated_at WHERE id = %s", (ann.conversation_id,))
    contact = other.execute("SELECT contact_id FROM contact_identities WHERE external_id = 'ann'").fetchone()[0]
    caplog.set_level("INFO", logger="store.inbound")
    writer.start()
    for sender in ("s9", "s0"):  # the first try holds both new identities; the second, s0 alone
        _wait_for_a_lock_wait(watch, database, other.info.backend_pid)
        other.execute("INSERT INTO contact_identities (channel_id, external_id, contact_id, created_at) "
                      "VALUES (%s, %s, %s, now())", (channel_id, sender, contact))  # waits: the batch is the victim
    other.execute("ROLLBACK")
    other.close()
    watch.close()
    writer.join(30)
    assert not writer.is_alive() and len(done) == 1
    assert "deadlocked with a concurrent one" in caplog.text
    assert "deadlocked with a concurrent writer twice; storing one by one" in caplog.text
    rows = _rows(store_engine)
    assert set(rows) == {"a0", "s0-1", "a1", "s9-1"}
    assert all(row.parse_error is None for row in rows.values())
    assert rows["a1"].conversation_id == ann.conversation_id
    assert [r.message_id for r in done[0]] == [rows["s0-1"].id, rows["a1"].id, rows["s9-1"].id]


def _msg_from(external_id: str, who: str, thread_key: str) -> InboundMessage:
    return InboundMessage(external_id=external_id, sender=Identity(who), thread_key=thread_key,
                          text=f"text of {external_id}")


def _wait_for_a_lock_wait(admin: Any, database: str, besides: int) -> None:
    """Until a session of ``database`` other than ``besides`` waits for a lock."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> %s "
                         "AND wait_event_type = 'Lock'", (database, besides)).fetchone()[0]:
            return
        time.sleep(0.02)
    raise AssertionError("the batch never waited for the other transaction")
