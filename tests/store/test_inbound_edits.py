"""Customers' edits (store.inbound.edits), on SQLite and PostgreSQL: the message shows the new text,
its history keeps the old one, and a repeated, older or unknown edit changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select

from connectors.base import MessageEdit
from store.events import events
from store.inbound import record_inbound
from store.sql import messages
from tests.store.test_inbound import _channel, _msg

T0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def _message(engine: Engine, external_id: str) -> tuple[str, object, object]:
    with engine.connect() as conn:
        row = conn.execute(select(messages.c.text, messages.c.edited_at, messages.c.edits)
                           .where(messages.c.external_id == external_id)).one()
    return row.text, row.edited_at, row.edits


def _updated(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [r.data for r in conn.execute(select(events.c.data).where(events.c.type == "message.updated"))]


def test_an_edit_changes_the_text_and_keeps_the_old_one(store_engine: Engine) -> None:
    channel_id = _channel(store_engine)
    [first] = record_inbound(store_engine, channel_id, [_msg("42:1", text="my order is #1234")])
    [edited] = record_inbound(store_engine, channel_id, [MessageEdit("42:1", "my order is #1235", T0)])
    assert (edited.message_id, edited.duplicate) == (first.message_id, False)
    text, at, history = _message(store_engine, "42:1")
    assert (text, at) == ("my order is #1235", T0.replace(tzinfo=None))
    assert history == [{"text": "my order is #1234", "until": T0.replace(tzinfo=None).isoformat()}]
    assert _updated(store_engine) == [{"message_id": first.message_id, "edited": True}]

    later = T0 + timedelta(minutes=1)
    record_inbound(store_engine, channel_id, [MessageEdit("42:1", "my order is #1236", later)])
    repeated = record_inbound(store_engine, channel_id, [MessageEdit("42:1", "my order is #1236", later),
                                                         MessageEdit("42:1", "an older edit", T0)])
    assert all(r.duplicate for r in repeated)
    text, _, history = _message(store_engine, "42:1")
    assert text == "my order is #1236"
    assert [h["text"] for h in history] == ["my order is #1234", "my order is #1235"]
    assert len(_updated(store_engine)) == 2


def test_an_edit_of_an_unknown_message_changes_nothing_and_one_in_its_messages_batch_applies(
        store_engine: Engine) -> None:
    channel_id = _channel(store_engine)
    [unknown] = record_inbound(store_engine, channel_id, [MessageEdit("42:9", "?", T0)])
    assert (unknown.message_id, unknown.duplicate) == (None, True)
    results = record_inbound(store_engine, channel_id,
                             [_msg("42:2", text="helo"), MessageEdit("42:2", "hello\x00", T0)])
    assert results[1].message_id == results[0].message_id and not results[1].duplicate
    assert _message(store_engine, "42:2")[0] == "hello\ufffd"  # NUL cleaned as for messages
