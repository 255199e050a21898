"""The ticket limit (store.inbound.limits), on SQLite and PostgreSQL: within the interval a
customer's message that would start a conversation joins their open (or latest) one on the
channel, alone or in a batch; the channel's setting overrides the global one; 0 is off."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, update

from store import assignment
from store.inbound import record_inbound
from store.models import utcnow
from store.settings import get_settings
from store.sql import channels, conversations
from tests.store.test_inbound import _channel, _msg

c = conversations.c


@pytest.fixture
def ten_minutes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OMNIDESK_NEW_CONVERSATION_INTERVAL", "600")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _mail(external_id: str, who: str = "ana", subject: str = "order") -> object:
    """A new mail: no references, no thread key - a new conversation unless the limit says otherwise."""
    return _msg(external_id, who=who, subject=subject)


def _conversations(engine: Engine, channel_id: int) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(select(c.id).where(c.channel_id == channel_id).order_by(c.id)).scalars())


def test_without_a_limit_each_new_mail_is_a_new_conversation(store_engine: Engine) -> None:
    channel_id = _channel(store_engine, "email")
    record_inbound(store_engine, channel_id, [_mail("a1")])
    record_inbound(store_engine, channel_id, [_mail("a2")])
    assert len(_conversations(store_engine, channel_id)) == 2


def test_within_the_interval_a_new_mail_joins_the_open_conversation(store_engine: Engine, ten_minutes: None) -> None:
    channel_id = _channel(store_engine, "email")
    [first] = record_inbound(store_engine, channel_id, [_mail("a1")])
    [second] = record_inbound(store_engine, channel_id, [_mail("a2", subject="another question")])
    assert second.conversation_id == first.conversation_id
    # In one batch too, with a keyed message (a chat) among them; another customer is not joined.
    results = record_inbound(store_engine, channel_id, [_mail("a3"), _msg("a4", who="ana", thread_key="chat-9"),
                                                        _mail("b1", who="bo"), _mail("b2", who="bo")])
    assert {r.conversation_id for r in results[:2]} == {first.conversation_id}
    assert results[2].conversation_id == results[3].conversation_id != first.conversation_id
    assert len(_conversations(store_engine, channel_id)) == 2
    # Once the interval has passed since the conversation started, a new mail starts another.
    with store_engine.begin() as conn:
        conn.execute(update(conversations).where(c.id == first.conversation_id)
                     .values(created_at=utcnow() - timedelta(minutes=11)))
    [later] = record_inbound(store_engine, channel_id, [_mail("a5")])
    assert later.conversation_id not in (first.conversation_id, results[2].conversation_id)


def test_the_latest_conversation_is_reopened_when_none_is_open(store_engine: Engine, ten_minutes: None) -> None:
    channel_id = _channel(store_engine, "email")
    [first] = record_inbound(store_engine, channel_id, [_mail("a1")])
    assignment.resolve(store_engine, first.conversation_id, by=None)
    [again] = record_inbound(store_engine, channel_id, [_mail("a2")])
    assert again.conversation_id == first.conversation_id and again.needs_routing
    with store_engine.connect() as conn:
        assert conn.execute(select(c.status).where(c.id == first.conversation_id)).scalar() == "open"


def test_the_channels_setting_overrides_the_global_one(store_engine: Engine, ten_minutes: None) -> None:
    off = _channel(store_engine, "email")
    with store_engine.begin() as conn:
        conn.execute(update(channels).where(channels.c.id == off).values(config={"new_conversation_interval": 0}))
    record_inbound(store_engine, off, [_mail("a1")])
    record_inbound(store_engine, off, [_mail("a2")])
    assert len(_conversations(store_engine, off)) == 2


def test_a_channel_may_set_a_limit_of_its_own(store_engine: Engine) -> None:
    on = _channel(store_engine, "email")
    with store_engine.begin() as conn:
        conn.execute(update(channels).where(channels.c.id == on).values(config={"new_conversation_interval": 60}))
    record_inbound(store_engine, on, [_mail("a1"), _mail("a2")])
    record_inbound(store_engine, on, [_mail("a3")])
    assert len(_conversations(store_engine, on)) == 1


def test_every_channel_kind_takes_the_setting_and_checks_it() -> None:
    from pydantic import ValidationError

    from connectors.api import ApiConfig

    base = {"secret": "s" * 16, "callback_url": "https://shop.example/cb"}
    assert ApiConfig(**base, new_conversation_interval=300).new_conversation_interval == 300
    assert ApiConfig(**base).new_conversation_interval is None  # the global setting applies
    for bad in (-1, 10**9, "soon"):
        with pytest.raises(ValidationError, match="new_conversation_interval"):
            ApiConfig(**base, new_conversation_interval=bad)
