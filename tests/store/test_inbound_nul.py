"""NUL in any text of a message, on SQLite and PostgreSQL alike: PostgreSQL text cannot hold it
(psycopg refuses the whole statement, and with it the batch); SQLite stored it raw. Either way the
message must be stored intact, NUL replaced by U+FFFD, in the conversation it belongs to, the
same on both databases; a resend is still a duplicate, and one such message in a batch costs the
others nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from connectors.base import Attachment, Identity, InboundMessage, StatusUpdate
from store.inbound import record_inbound
from store.sql import attachments, channels, contacts, conversations, identities, messages
from tests.store.test_inbound import _channel

DIRTY = "bad\x00value"
CLEAN = "bad\ufffdvalue"


def _message(external_id: str, field: str | None = None, **kw: Any) -> InboundMessage:
    """A message of customer "cust" on thread "chat-1"; ``field``: the one that holds a NUL."""
    who = {"external_id": "cust", "name": "Ann", "email": "ann@example.com", "phone": "+48500100200"}
    values: dict[str, Any] = {"external_id": external_id, "text": f"text of {external_id}", "thread_key": "chat-1",
                              "language": "pl", "subject": "Order 7", "html": "<p>hi</p>"}
    filename = "invoice.pdf"
    if field in ("sender_id", "email", "phone", "name"):
        who[{"sender_id": "external_id"}.get(field, field)] = f"{field}-{DIRTY}"
    elif field == "filename":
        filename = f"in{DIRTY}.pdf"
    elif field == "message_id":
        values["external_id"] = f"{external_id}-{DIRTY}"
    elif field is not None:
        values[field] = f"{field}-{DIRTY}"
    sender = kw.pop("sender", Identity(**who))
    values.update(kw)
    return InboundMessage(sender=sender, attachments=(Attachment(filename, "application/pdf", b"%PDF"),),
                          **values)


FIELDS = ["message_id", "sender_id", "email", "phone", "name", "thread_key", "language", "subject", "text", "html",
          "filename"]


@pytest.mark.parametrize("field", FIELDS)
def test_a_nul_in_any_field_stores_the_message_cleaned_in_its_conversation(store_engine: Engine, field: str) -> None:
    channel_id = _channel(store_engine)
    [before] = record_inbound(store_engine, channel_id, [_message("m0")])
    dirty = _message("m1", field)
    [stored] = record_inbound(store_engine, channel_id, [dirty])
    assert stored.message_id is not None and not stored.duplicate
    # A resend of the same bytes is recognised.
    [again] = record_inbound(store_engine, channel_id, [dirty])
    assert again.duplicate and again.message_id == stored.message_id
    with store_engine.connect() as conn:
        row = conn.execute(
            select(messages.c.external_id, messages.c.text, messages.c.html, messages.c.parse_error,
                   messages.c.subject.label("message_subject"), conversations.c.subject, conversations.c.thread_key,
                   conversations.c.language, contacts.c.name, contacts.c.email,
                   contacts.c.phone, contacts.c.id.label("contact_id"), attachments.c.filename)
            .join(conversations, conversations.c.id == messages.c.conversation_id)
            .join(contacts, contacts.c.id == messages.c.sender_contact_id)
            .join(attachments, attachments.c.message_id == messages.c.id)
            .where(messages.c.id == stored.message_id)
        ).one()
        count = conn.execute(select(func.count()).select_from(messages)).scalar()
        senders = set(conn.execute(select(identities.c.external_id).where(identities.c.contact_id == row.contact_id))
                      .scalars())
    assert count == 2
    assert row.parse_error is None
    expected = {
        "message_id": "m1", "sender_id": "cust", "email": "ann@example.com", "phone": "+48500100200", "name": "Ann",
        "thread_key": "chat-1", "language": "pl", "subject": "Order 7", "text": "text of m1", "html": "<p>hi</p>",
        "filename": "invoice.pdf",
    }
    expected[field] = {"message_id": f"m1-{CLEAN}", "filename": f"in{CLEAN}.pdf"}.get(field, f"{field}-{CLEAN}")
    # A new identity with the customer's email and phone is the same customer: one contact.
    sender_id = max(senders - {"cust"}, default="cust")
    assert senders == {"cust", sender_id}
    got = {"message_id": row.external_id, "sender_id": sender_id, "email": row.email, "phone": row.phone,
           "name": row.name, "thread_key": row.thread_key, "language": row.language, "subject": row.subject,
           "text": row.text, "html": row.html, "filename": row.filename}
    # The conversation's language and subject came with its first message, and a known sender's
    # contact keeps its details: those fields are checked on a first message, below.
    for kept in ("language", "email", "phone", "name"):
        if field == kept:
            got[kept] = expected[kept] = None
    if field == "subject":
        got["subject"] = row.message_subject
    assert got == expected
    if field == "thread_key":
        # Another thread: a conversation of its own, which the next such message joins.
        assert stored.conversation_id != before.conversation_id
        [follow] = record_inbound(store_engine, channel_id, [_message("m2", field)])
        assert follow.conversation_id == stored.conversation_id
    else:
        assert stored.conversation_id == before.conversation_id


@pytest.mark.parametrize("field", ["email", "phone", "name", "language", "subject"])
def test_a_first_message_with_a_nul_keeps_it_cleaned_on_its_contact_and_conversation(
        store_engine: Engine, field: str) -> None:
    channel_id = _channel(store_engine)
    [stored] = record_inbound(store_engine, channel_id, [_message("m1", field)])
    table = conversations if field in ("language", "subject") else contacts
    key = conversations.c.id if table is conversations else contacts.c.id
    wanted = stored.conversation_id if table is conversations else select(messages.c.sender_contact_id).where(
        messages.c.id == stored.message_id).scalar_subquery()
    with store_engine.connect() as conn:
        value = conn.execute(select(table.c[field]).where(key == wanted)).scalar()
    assert value == f"{field}-{CLEAN}"[:20 if field == "language" else None]


def test_nul_in_participants_refs_and_receipts(store_engine: Engine) -> None:
    channel_id = _channel(store_engine, "email")
    [first] = record_inbound(store_engine, channel_id, [
        InboundMessage(external_id=f"<a{DIRTY}@x>", sender=Identity("ann@example.com"), text="hello",
                       participants=(Identity(f"cc{DIRTY}@example.com", name=f"C{DIRTY}", email=f"cc{DIRTY}@x"),)),
    ])
    [reply] = record_inbound(store_engine, channel_id, [
        InboundMessage(external_id="<b@x>", sender=Identity(f"cc{DIRTY}@example.com"), text="re",
                       thread_refs=(f"<a{DIRTY}@x>",)),
    ])
    assert reply.conversation_id == first.conversation_id
    with store_engine.connect() as conn:
        names = set(conn.execute(select(contacts.c.name)).scalars())
    assert f"C{CLEAN}" in names
    # A receipt for a message we do not know, NUL in its id and reason: nothing moves, nothing fails.
    [receipt] = record_inbound(store_engine, channel_id, [StatusUpdate(f"x{DIRTY}", "delivered", reason=DIRTY)])
    assert receipt.message_id is None


def test_one_message_with_a_nul_in_a_batch_of_30_costs_the_others_nothing(
        store_engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    channel_id = _channel(store_engine)
    batch = [_message(f"m{n}", thread_key=f"chat-{n}", sender=Identity(f"cust{n}")) for n in range(30)]
    batch[17] = _message("m17", "message_id", thread_key="chat-17",
                         sender=Identity(f"cust{DIRTY}", email=f"x{DIRTY}@example.com", phone=f"+48{DIRTY}"))
    results = record_inbound(store_engine, channel_id, batch, cursor={"offset": 30})
    assert "one by one" not in caplog.text  # stored as a batch: nothing failed
    assert [r.duplicate for r in results] == [False] * 30
    with store_engine.connect() as conn:
        texts = dict(conn.execute(select(messages.c.external_id, messages.c.text)).all())
        assert conn.execute(select(channels.c.cursor).where(channels.c.id == channel_id)).scalar() == {"offset": 30}
    assert len(texts) == 30 and texts[f"m17-{CLEAN}"] == "text of m17"
    assert all(texts[f"m{n}"] == f"text of m{n}" for n in range(30) if n != 17)
    assert all(r.duplicate for r in record_inbound(store_engine, channel_id, batch))
