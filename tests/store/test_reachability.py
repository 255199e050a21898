"""Customers who cannot be reached: an opt-out stored with the inbound events marks the identity
(an event ``contact.updated``), replies are refused at once until the opt-in, a failed send that
said so marks it too. Both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from connectors.base import Identity, InboundMessage, ReachabilityUpdate
from store import conversations, outbound
from store.channels import create_channel
from store.events import events
from store.inbound import record_inbound
from store.reachability import ContactUnreachable
from store.sql import identities, messages
from tests.channels.remote import remote_kind  # noqa: F401 - fixture

CONFIG = {"secret": "a-shared-secret-of-the-shop", "callback_url": "http://127.0.0.1:9/replies"}


def _hello(n: int = 1, who: str = "cust-1") -> InboundMessage:
    return InboundMessage(external_id=f"in-{n}", sender=Identity(who, name="Customer"), text="hello",
                          thread_key=f"t-{who}")


def _identity(engine: Engine, external_id: str = "cust-1") -> tuple[str | None, object]:
    with engine.connect() as conn:
        row = conn.execute(select(identities.c.unreachable_reason, identities.c.unreachable_since)
                           .where(identities.c.external_id == external_id)).one()
    return row.unreachable_reason, row.unreachable_since


def _contact_events(engine: Engine) -> list:  # type: ignore[type-arg]
    with engine.connect() as conn:
        return conn.execute(select(events).where(events.c.type == "contact.updated").order_by(events.c.id)).all()


def test_opt_out_refuses_replies_until_opt_in(store_engine: Engine, remote_kind: str) -> None:  # noqa: F811
    channel_id = create_channel(store_engine, remote_kind, "chat", CONFIG)
    [hello] = record_inbound(store_engine, channel_id, [_hello()])
    conversation_id = hello.conversation_id
    assert conversation_id is not None
    # The opt-out and the message that carried it, in one batch, the opt-out first.
    record_inbound(store_engine, channel_id, [ReachabilityUpdate("cust-1", False, reason="replied STOP"), _hello(2)])
    reason, since = _identity(store_engine)
    assert reason == "replied STOP" and since is not None
    with pytest.raises(ContactUnreachable, match="replied STOP"):
        outbound.create_reply(store_engine, conversation_id, agent_id=None, text="are you there?")
    outbound.create_reply(store_engine, conversation_id, agent_id=None, text="note to self", private=True)
    assert conversations.summary(store_engine, conversation_id).unreachable_reason == "replied STOP"
    record_inbound(store_engine, channel_id, [ReachabilityUpdate("cust-1", True)])
    assert _identity(store_engine) == (None, None)
    outbound.create_reply(store_engine, conversation_id, agent_id=None, text="welcome back")
    assert [e.data["reachable"] for e in _contact_events(store_engine)] == [False, True]
    with store_engine.connect() as conn:
        texts = conn.execute(select(messages.c.text).where(messages.c.direction == "out")
                             .order_by(messages.c.id)).scalars().all()
    assert texts == ["note to self", "welcome back"]


def test_an_opt_out_from_someone_never_seen_is_kept(store_engine: Engine, remote_kind: str) -> None:  # noqa: F811
    channel_id = create_channel(store_engine, remote_kind, "chat", CONFIG)
    [done] = record_inbound(store_engine, channel_id, [ReachabilityUpdate("stranger", False)])
    assert (done.message_id, done.conversation_id) == (None, None)
    assert _identity(store_engine, "stranger")[0] == "the customer opted out"
    [first] = record_inbound(store_engine, channel_id, [_hello(1, "stranger")])
    assert first.conversation_id is not None
    with pytest.raises(ContactUnreachable):
        outbound.create_reply(store_engine, first.conversation_id, agent_id=None, text="hi")


def test_a_send_that_found_the_customer_unreachable_marks_the_identity(store_engine: Engine, remote_kind: str) -> None:  # noqa: F811
    channel_id = create_channel(store_engine, remote_kind, "chat", CONFIG)
    [hello] = record_inbound(store_engine, channel_id, [_hello()])
    assert hello.conversation_id is not None
    reply = outbound.create_reply(store_engine, hello.conversation_id, agent_id=None, text="hi")
    assert outbound.claim(store_engine, reply) is not None
    outbound.mark_failed(store_engine, reply, "Forbidden: bot was blocked by the user", unreachable=True)
    assert _identity(store_engine)[0] == "Forbidden: bot was blocked by the user"
    with store_engine.connect() as conn:
        row = conn.execute(select(messages.c.status, messages.c.status_reason).where(messages.c.id == reply)).one()
    assert tuple(row) == ("failed", "Forbidden: bot was blocked by the user")
    [told] = _contact_events(store_engine)
    assert told.data["reachable"] is False
    # A second failure of a reply no longer sending moves nothing and marks nothing again.
    outbound.mark_failed(store_engine, reply, "again", unreachable=True)
    assert len(_contact_events(store_engine)) == 1
