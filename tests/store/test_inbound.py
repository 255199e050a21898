"""The store's rules, on SQLite and PostgreSQL: threading and the reopen rule, contacts across
channels, delivery statuses that only move forward, batches with duplicates and their cursor."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, func, select, update

from connectors.base import Identity, InboundMessage, StatusUpdate
from store import assignment, outbound
from store.inbound import record_inbound
from store.models import utcnow
from store.sql import channels, contacts, conversations, messages


def _channel(engine: Engine, kind: str = "api") -> int:
    with engine.begin() as conn:
        return conn.execute(
            channels.insert()
            .values(kind=kind, name=f"{kind} channel", config={}, enabled=True, status="ok", error_count=0,
                    created_at=utcnow(), updated_at=utcnow())
            .returning(channels.c.id)
        ).scalar_one()


def _msg(external_id: str, who: str = "cust", **kw) -> InboundMessage:  # type: ignore[no-untyped-def]
    kw.setdefault("text", f"text of {external_id}")
    return InboundMessage(external_id=external_id, sender=Identity(external_id=who, **kw.pop("ident", {})), **kw)


def _one(engine: Engine, channel_id: int, message: InboundMessage) -> int:
    [recorded] = record_inbound(engine, channel_id, [message])
    assert recorded.conversation_id is not None
    return recorded.conversation_id


def test_reopen_within_the_period_else_a_new_conversation(store_engine: Engine) -> None:
    channel_id = _channel(store_engine)
    first = _one(store_engine, channel_id, _msg("a1", thread_key="order-7"))
    assert _one(store_engine, channel_id, _msg("a2", thread_key="order-7")) == first
    assignment.resolve(store_engine, first, by=None)

    assert _one(store_engine, channel_id, _msg("a3", thread_key="order-7")) == first  # reopened
    with store_engine.connect() as conn:
        row = conn.execute(select(conversations).where(conversations.c.id == first)).one()
    assert row.status == "open" and row.resolved_at is None and row.needs_routing and row.waiting_since

    assignment.resolve(store_engine, first, by=None)
    with store_engine.begin() as conn:  # resolved long ago, beyond the 7-day reopen period
        conn.execute(update(conversations).where(conversations.c.id == first)
                     .values(resolved_at=utcnow() - timedelta(days=30)))
    later = _one(store_engine, channel_id, _msg("a4", thread_key="order-7"))
    assert later != first
    # And by the ticket number too: an old ticket named in a new message starts a new one.
    again = _one(store_engine, channel_id, _msg("a5", ticket_number=first))
    assert again not in (first, later)
    with store_engine.connect() as conn:
        assert conn.execute(select(conversations.c.status).where(conversations.c.id == first)).scalar() == "resolved"


def test_threading_by_reference_and_ticket_number_needs_membership(store_engine: Engine) -> None:
    channel_id = _channel(store_engine, "email")
    ours = _one(store_engine, channel_id, _msg("<m1@example.com>", who="marta@example.com"))
    # A reply naming an earlier message joins it, whoever the sender (a Cc'd colleague).
    assert _one(store_engine, channel_id, _msg("<m2@example.com>", who="boss@example.com",
                                               thread_refs=("<zzz@x>", "<m1@example.com>"))) == ours
    # The ticket number joins only for the conversation's own people ...
    assert _one(store_engine, channel_id, _msg("<m3@example.com>", who="marta@example.com",
                                               ticket_number=ours)) == ours
    # ... and the participant who replied is one of them now.
    assert _one(store_engine, channel_id, _msg("<m4@example.com>", who="boss@example.com",
                                               ticket_number=ours)) == ours
    # A stranger naming the number does not get into someone else's ticket.
    stranger = _one(store_engine, channel_id, _msg("<m5@evil.example>", who="mallory@evil.example",
                                                   ticket_number=ours))
    assert stranger != ours
    # No link at all: a new conversation, even from the same customer.
    assert _one(store_engine, channel_id, _msg("<m6@example.com>", who="marta@example.com")) not in (ours, stranger)


def test_participants_listed_join_by_ticket_number(store_engine: Engine) -> None:
    channel_id = _channel(store_engine, "email")
    conv = _one(store_engine, channel_id, _msg("<p1@x>", who="marta@example.com",
                                               participants=(Identity("pau@example.com", email="pau@example.com"),)))
    assert _one(store_engine, channel_id, _msg("<p2@x>", who="pau@example.com", ticket_number=conv)) == conv


def test_one_person_on_two_channels_is_one_contact(store_engine: Engine) -> None:
    web, mail = _channel(store_engine), _channel(store_engine, "email")
    _one(store_engine, web, _msg("w1", who="shop-user-17", ident={"name": "Marta", "email": "Marta@Example.com"}))
    _one(store_engine, mail, _msg("<e1@x>", who="marta@example.com", ident={"email": "marta@example.com"}))
    _one(store_engine, web, _msg("w2", who="shop-user-18", ident={"phone": "+34600111222"}))
    _one(store_engine, mail, _msg("<e2@x>", who="other@example.com", ident={"phone": "+34600111222"}))
    with store_engine.connect() as conn:
        rows = conn.execute(select(contacts.c.id, contacts.c.email).order_by(contacts.c.id)).all()
    assert len(rows) == 2  # Marta by email, the other by phone


def test_delivery_status_only_moves_forward(store_engine: Engine) -> None:
    channel_id = _channel(store_engine)
    conv = _one(store_engine, channel_id, _msg("s1"))
    reply = outbound.create_reply(store_engine, conv, agent_id=None, text="hi")
    with store_engine.begin() as conn:
        conn.execute(update(messages).where(messages.c.id == reply).values(status="sent", external_id="out-1"))

    def status_after(update_: StatusUpdate) -> str:
        record_inbound(store_engine, channel_id, [update_])
        with store_engine.connect() as conn:
            return conn.execute(select(messages.c.status).where(messages.c.id == reply)).scalar_one()

    assert status_after(StatusUpdate("out-1", "read")) == "read"
    assert status_after(StatusUpdate("out-1", "delivered")) == "read"  # a late receipt never goes back
    assert status_after(StatusUpdate("out-1", "sent")) == "read"
    assert status_after(StatusUpdate("out-1", "failed", reason="bounced")) == "read"
    assert status_after(StatusUpdate("unknown-id", "failed")) == "read"


def test_a_batch_with_redeliveries_stores_each_message_once_and_keeps_its_cursor(store_engine: Engine) -> None:
    channel_id = _channel(store_engine, "email")
    batch = [_msg("<b1@x>", who="a@x"), _msg("<b2@x>", who="b@x"), _msg("<b1@x>", who="a@x")]
    results = record_inbound(store_engine, channel_id, batch, cursor={"last_uid": 3})
    assert [r.duplicate for r in results] == [False, False, True]
    assert results[2].message_id == results[0].message_id
    again = record_inbound(store_engine, channel_id, [*batch[:2], _msg("<b3@x>", who="c@x")], cursor={"last_uid": 4})
    assert [r.duplicate for r in again] == [True, True, False]
    with store_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(messages)).scalar_one() == 3
        assert conn.execute(select(channels.c.cursor).where(channels.c.id == channel_id)).scalar_one() == {
            "last_uid": 4}


def test_nul_bytes_and_huge_fields_do_not_lose_the_message(store_engine: Engine) -> None:
    channel_id = _channel(store_engine, "email")
    weird = _msg("<nul@x>", who="a@x", text="before\x00after", subject="s\x00" * 10, raw=b"raw\x00bytes")
    conv = _one(store_engine, channel_id, weird)
    with store_engine.connect() as conn:
        row = conn.execute(select(messages).where(messages.c.conversation_id == conv)).one()
    assert row.text == "before\ufffdafter" and row.raw == b"raw\x00bytes"
