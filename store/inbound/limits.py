"""The ticket limit: a customer's new conversations are at least an interval apart on a channel.

A message that would start a conversation within ``new_conversation_interval`` seconds of the
start of the customer's latest one on the same channel joins their open conversation there
instead (or, with none open, that latest one, reopened): three mails in a minute about one order
make one ticket. The interval is the channel's config key ``new_conversation_interval``, else
the setting ``OMNIDESK_NEW_CONVERSATION_INTERVAL``; 0 turns the limit off (the default).

This is the rule's one place: the threading rules (store.inbound.threads.conversation_for) ask
:func:`joinable` before they start a conversation, and the batch path sends the messages that
would start one that way while a limit is on.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from store.settings import get_settings
from store.sql import channels, conversations


def interval(conn: Connection, channel_id: int) -> float:
    """The channel's minimum interval between a customer's new conversations, in seconds (0: none)."""
    config = conn.execute(select(channels.c.config).where(channels.c.id == channel_id)).scalar() or {}
    own = config.get("new_conversation_interval") if isinstance(config, dict) else None
    return float(own) if own is not None else get_settings().new_conversation_interval


def joinable(conn: Connection, channel_id: int, contact_id: int, now: datetime, seconds: float,
             columns: Any) -> Any:
    """The conversation a message of ``contact_id`` joins instead of starting one (``columns``: the
    select the threading rules read), or None: their open conversation on the channel, else their
    latest one, if it started within ``seconds`` before ``now``."""
    if seconds <= 0:
        return None
    c = conversations.c
    return conn.execute(
        columns.where(c.channel_id == channel_id, c.contact_id == contact_id,
                      c.created_at >= now - timedelta(seconds=seconds))
        .order_by(c.status != "open", c.id.desc()).limit(1)
    ).first()
