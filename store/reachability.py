"""Customers who cannot be written to on a channel: they opted out (STOP), blocked the bot, or the
provider said they unsubscribed.

The mark is on the contact identity (one channel's view of the customer): ``unreachable_reason``
and ``unreachable_since``. It is set by the channel's opt-out (a ``ReachabilityUpdate`` stored by
``record_inbound``) or by a send that raised ``RecipientUnreachable`` (the deliver job), and cleared
by an opt-in. While it is set, ``store.outbound.create_reply`` refuses replies on that channel at
once (:class:`ContactUnreachable`; the API answers 422). Each change writes a ``contact.updated``
event in its own transaction.

The identity a conversation's replies go to is the oldest identity of its contact on its channel
(:func:`reply_identity`), the same one ``store.outbound`` addresses.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.sql.elements import ColumnElement

from connectors.base import Identity, ReachabilityUpdate
from store.models import utcnow
from store.sql import clean, identities

i = identities.c


class ContactUnreachable(ValueError):
    """The customer cannot be written to on this conversation's channel; ``str()`` says why."""


def reply_identity(contact_id: Any, channel_id: Any) -> Any:
    """SELECT of the identity (id, external_id, unreachable_reason) replies to ``contact_id`` on
    ``channel_id`` go to: its oldest one there. Columns or values both do."""
    return (select(i.id, i.external_id, i.unreachable_reason)
            .where(i.contact_id == contact_id, i.channel_id == channel_id).order_by(i.id).limit(1))


def reason_column(contact_id: ColumnElement[Any], channel_id: ColumnElement[Any]) -> Any:
    """``unreachable_reason`` of the reply identity, as a column of a conversation query."""
    return (select(i.unreachable_reason).where(i.contact_id == contact_id, i.channel_id == channel_id)
            .order_by(i.id).limit(1).scalar_subquery().label("unreachable_reason"))


def check(conn: Connection, contact_id: int, channel_id: int) -> None:
    """Raise :class:`ContactUnreachable` when replies to the contact on the channel are refused."""
    found = conn.execute(reply_identity(contact_id, channel_id)).first()
    if found is not None and found.unreachable_reason is not None:
        raise ContactUnreachable(f"the customer cannot be reached on this channel: {found.unreachable_reason}")


def mark(conn: Connection, identity_id: int, contact_id: int, reason: str | None) -> dict[str, Any]:
    """Set (``reason``) or clear (None) the mark of one identity; returns its stream event for the
    caller to append (``contact.updated``, about no one conversation: every agent's inbox may show
    the contact)."""
    from store.events import event  # store.events reads store.conversations, which reads this module

    now = utcnow()
    reason = clean(reason)[:2000] if reason is not None else None
    values: dict[str, Any] = {"unreachable_reason": reason, "unreachable_since": now if reason else None}
    conn.execute(update(identities).where(i.id == identity_id).values(**values))
    return event("contact.updated", None, at=now, contact_id=contact_id, identity_id=identity_id,
                 reachable=reason is None)


def apply(conn: Connection, channel_id: int, change: ReachabilityUpdate) -> dict[str, Any]:
    """A channel's opt-out or opt-in, on the sender's identity (created when first seen, so an
    opt-out before any message is kept). Returns the stream event to append."""
    from store.inbound.contacts import contact_for  # store.inbound reads this module
    from store.inbound.rows import ID_LENGTH

    contact_id = contact_for(conn, channel_id, Identity(external_id=change.sender_external_id))
    row = conn.execute(select(i.id).where(i.channel_id == channel_id,
                                          i.external_id == change.sender_external_id[:ID_LENGTH])).one()
    reason = None if change.reachable else (change.reason or "the customer opted out")
    return mark(conn, row.id, contact_id, reason)
