"""Receipts in the store, on SQLite and PostgreSQL: one that overtakes the record of its send finds
the message by our id (the callback URL's ``m``), and never another message's; the note a send
left (its SMS segments) stays when a receipt without a reason moves the status on."""

from __future__ import annotations

from sqlalchemy import Engine, select, update

from connectors.base import SendResult, StatusUpdate
from store import outbound
from store.inbound import record_inbound
from store.sql import messages
from tests.store.test_inbound import _channel, _msg, _one


def _row(engine: Engine, message_id: int) -> tuple[str, str | None, str | None]:
    with engine.connect() as conn:
        row = conn.execute(select(messages.c.status, messages.c.external_id, messages.c.status_reason)
                           .where(messages.c.id == message_id)).one()
    return row.status, row.external_id, row.status_reason


def test_a_receipt_before_the_send_is_recorded_finds_its_message(store_engine: Engine) -> None:
    channel_id = _channel(store_engine, "sms")
    conv = _one(store_engine, channel_id, _msg("in-1"))
    reply = outbound.create_reply(store_engine, conv, agent_id=None, text="hi")
    other = outbound.create_reply(store_engine, conv, agent_id=None, text="other")
    claim = outbound.claim(store_engine, reply)
    assert claim is not None  # "sending": Twilio took it, the worker has not recorded the sid yet
    record_inbound(store_engine, channel_id, [StatusUpdate("SM-early", "delivered", message_id=reply)])
    assert _row(store_engine, reply)[:2] == ("delivered", "SM-early")
    outbound.mark_sent(store_engine, reply, SendResult("SM-early"))  # the late record moves nothing back
    assert _row(store_engine, reply)[0] == "delivered"
    # Our id with another message's external id, or another channel's: nothing moves.
    record_inbound(store_engine, channel_id, [StatusUpdate("SM-else", "failed", reason="x", message_id=reply)])
    record_inbound(store_engine, _channel(store_engine, "sms"), [StatusUpdate("SM-x", "read", message_id=other)])
    assert _row(store_engine, reply)[0] == "delivered"
    assert _row(store_engine, other) == ("pending", None, None)


def test_a_receipt_keeps_the_note_of_the_send(store_engine: Engine) -> None:
    channel_id = _channel(store_engine, "sms")
    conv = _one(store_engine, channel_id, _msg("in-1"))
    reply = outbound.create_reply(store_engine, conv, agent_id=None, text="long " * 60)
    assert outbound.claim(store_engine, reply) is not None
    outbound.mark_sent(store_engine, reply, SendResult("SM-1", note="sent as 2 SMS segments"))
    record_inbound(store_engine, channel_id, [StatusUpdate("SM-1", "delivered")])
    assert _row(store_engine, reply) == ("delivered", "SM-1", "sent as 2 SMS segments")
    record_inbound(store_engine, channel_id, [StatusUpdate("SM-1", "read")])
    assert _row(store_engine, reply)[0] == "read"
    with store_engine.begin() as conn:
        conn.execute(update(messages).where(messages.c.id == reply).values(status="sent"))
    record_inbound(store_engine, channel_id, [StatusUpdate("SM-1", "failed", reason="carrier said no (30008)")])
    assert _row(store_engine, reply) == ("failed", "SM-1", "carrier said no (30008)")
