"""One inbound message, in its transaction: its sender's contact, its conversation (by
references, ticket number or thread key, with the reopen rule), the message; and delivery
receipts for outbound messages. The batch path (store.inbound_batch) uses the same rules."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, func, or_, select, update

from connectors.base import Identity, InboundMessage, StatusUpdate
from store.models import utcnow
from store.settings import get_settings
from store.sql import (
    attachments,
    clean,
    contacts,
    conversations,
    identities,
    insert_ignore,
    insert_many,
    messages,
    participants,
)

# Delivery statuses only move forward; "failed" may follow anything before "delivered".
_RANK = {"pending": 0, "sending": 1, "sent": 2, "failed": 3, "delivered": 3, "read": 4}


@dataclasses.dataclass(frozen=True, slots=True)
class Recorded:
    message_id: int | None
    conversation_id: int | None
    duplicate: bool = False
    # The caller rings the router after commit (workers.after_inbound). The store has already
    # counted that routing attempt on the conversation, in the same transaction as the message.
    needs_routing: bool = False


class _Duplicate(Exception):
    def __init__(self, message_id: int, conversation_id: int) -> None:
        self.recorded = Recorded(message_id, conversation_id, duplicate=True)


def _record_message(conn: Connection, channel_id: int, msg: InboundMessage, *, checked: bool = False) -> Recorded:
    """Store one message; ``checked``: the caller already looked for it among the stored ones."""
    external_id = msg.external_id[:400]
    if not checked:
        known = conn.execute(
            select(messages.c.id, messages.c.conversation_id).where(
                messages.c.channel_id == channel_id, messages.c.external_id == external_id
            )
        ).first()
        if known:
            raise _Duplicate(known.id, known.conversation_id)

    now = utcnow()
    contact_id = contact_for(conn, channel_id, msg.sender)
    conversation_id, needs_routing = _conversation_for(conn, channel_id, contact_id, msg, now)
    message_id = conn.execute(
        insert_ignore(conn, messages, ["channel_id", "external_id"])
        .values(**message_row(channel_id, conversation_id, contact_id, msg, now))
        .returning(messages.c.id)
    ).scalar()
    if message_id is None:  # stored by a concurrent delivery of the same message
        winner = conn.execute(
            select(messages.c.id, messages.c.conversation_id).where(
                messages.c.channel_id == channel_id, messages.c.external_id == external_id
            )
        ).one()
        raise _Duplicate(winner.id, winner.conversation_id)
    insert_many(conn, attachments, _attachment_rows(message_id, msg))
    if msg.participants:
        _add_participants(conn, channel_id, conversation_id, msg.participants)
    return Recorded(message_id, conversation_id, needs_routing=needs_routing)


def contact_row(who: Identity, now: Any) -> dict[str, Any]:
    """The contacts row of a person first seen."""
    return {
        "name": clean(who.name)[:300] if who.name else None,  # type: ignore[index]
        "email": who.email[:320] if who.email else None,
        "phone": who.phone[:40] if who.phone else None,
        "created_at": now,
    }


def stored_messages(conn: Connection, channel_id: int, external_ids: Collection[str]) -> dict[str, tuple[int, int]]:
    """The channel's stored messages among ``external_ids``: external id -> (message id,
    conversation id), in chunks of 500 ids a look."""
    ids = list(external_ids)
    found: dict[str, tuple[int, int]] = {}
    for start in range(0, len(ids), 500):
        for row in conn.execute(
            select(messages.c.external_id, messages.c.id, messages.c.conversation_id).where(
                messages.c.channel_id == channel_id, messages.c.external_id.in_(ids[start:start + 500])
            )
        ):
            found[row.external_id] = (row.id, row.conversation_id)
    return found


def message_row(channel_id: int, conversation_id: int, contact_id: int, msg: InboundMessage, now: Any
                ) -> dict[str, Any]:
    """The messages row of an inbound message."""
    return {
        "conversation_id": conversation_id,
        "channel_id": channel_id,
        "direction": "in",
        "sender_contact_id": contact_id,
        "text": clean(msg.text) or "",
        "html": clean(msg.html),
        "quoted": clean(msg.quoted),
        "subject": clean(msg.subject),
        "automatic": msg.automatic,
        "external_id": msg.external_id[:400],
        "status": "received",
        "parse_error": clean(msg.parse_error),
        "raw": msg.raw or None,
        "sent_at": _naive(msg.sent_at),
        "created_at": now,
        "private": False,
        "attempts": 0,
    }


def conversation_row(channel_id: int, contact_id: int, msg: InboundMessage, key: str | None, now: Any
                     ) -> dict[str, Any]:
    """The conversations row a first message opens; ``key``: its thread key (None: none)."""
    return {
        "channel_id": channel_id,
        "contact_id": contact_id,
        "status": "open",
        "priority": 0,
        "language": msg.language,
        "subject": clean(msg.subject),
        "thread_key": key,
        "open_key": key,
        "waiting_since": now,
        "needs_routing": True,
        "route_attempts": 1,  # the routing job rung after commit: its attempt, counted here
        "last_message_at": now,
        "created_at": now,
        "updated_at": now,
    }


def _attachment_rows(message_id: int, msg: InboundMessage) -> list[dict[str, Any]]:
    return [
        {
            "message_id": message_id,
            "filename": clean(a.filename)[:500] or "attachment",  # type: ignore[index]
            "content_type": a.content_type[:200],
            "size": a.size,
            "content_id": a.content_id,
            "inline": a.inline,
            "data": a.data,
        }
        for a in msg.attachments
    ]


def contact_for(conn: Connection, channel_id: int, who: Identity) -> int:
    """The contact behind a channel identity, created on first sight. A new identity whose
    email or phone an existing contact already has is linked to that contact."""
    external_id = who.external_id[:400]
    found = conn.execute(
        select(identities.c.contact_id).where(
            identities.c.channel_id == channel_id, identities.c.external_id == external_id
        )
    ).scalar()
    if found is not None:
        return found
    contact_id = created = None
    if who.email or who.phone:
        contact_id = conn.execute(
            select(contacts.c.id)
            .where(
                or_(
                    func.lower(contacts.c.email) == who.email.lower() if who.email else False,
                    contacts.c.phone == who.phone if who.phone else False,
                )
            )
            .order_by(contacts.c.id)
            .limit(1)
        ).scalar()
    if contact_id is None:
        contact_id = created = conn.execute(
            contacts.insert().values(**contact_row(who, utcnow())).returning(contacts.c.id)
        ).scalar_one()
    linked = conn.execute(
        insert_ignore(conn, identities, ["channel_id", "external_id"])
        .values(contact_id=contact_id, channel_id=channel_id, external_id=external_id, created_at=utcnow())
        .returning(identities.c.contact_id)
    ).scalar()
    if linked is None:  # a concurrent first message from the same person won: theirs is the contact
        linked = conn.execute(
            select(identities.c.contact_id).where(
                identities.c.channel_id == channel_id, identities.c.external_id == external_id
            )
        ).scalar_one()
        if created is not None:
            conn.execute(contacts.delete().where(contacts.c.id == created))
    return linked


def _conversation_for(
    conn: Connection, channel_id: int, contact_id: int, msg: InboundMessage, now: Any, *, found: int | None = None,
    refs_checked: bool = False,
) -> tuple[int, bool]:
    """Find the conversation the message belongs to (reopening it when recently resolved) or
    start one. Returns (conversation id, whether it needs routing). ``found``: the conversation
    of the message it replies to, when the caller knows it already; ``refs_checked``: the caller
    found none of its references stored."""
    c = conversations.c
    row = None
    if found is not None:
        row = _load(conn, c.id == found)
    elif msg.thread_refs and not refs_checked:
        conv_id = conn.execute(
            select(messages.c.conversation_id)
            .where(messages.c.channel_id == channel_id, messages.c.external_id.in_(msg.thread_refs[:50]))
            .order_by(messages.c.id.desc())
            .limit(1)
        ).scalar()
        if conv_id is not None:
            row = _load(conn, c.id == conv_id)
    if row is None and msg.ticket_number:
        # Only the conversation's own people may join it by naming its number.
        member = or_(
            c.contact_id == contact_id,
            select(participants.c.contact_id)
            .where(participants.c.conversation_id == c.id, participants.c.contact_id == contact_id)
            .exists(),
        )
        row = _load(conn, c.id == msg.ticket_number, c.channel_id == channel_id, member)
    if row is None and msg.thread_key:
        key = msg.thread_key[:400]
        # The thread's open conversation, else its last one if resolved (the reopen rule decides).
        row = conn.execute(
            _columns()
            .where(c.channel_id == channel_id, or_(c.open_key == key, (c.thread_key == key) & (c.status == "resolved")))
            .order_by(c.open_key.is_(None), c.id.desc())
            .limit(1)
        ).first()

    if row is not None and row.status == "resolved":
        reopen_until = (row.resolved_at or now) + timedelta(days=get_settings().reopen_days)
        if now > reopen_until:
            row = None
    if row is not None:
        if row.contact_id != contact_id:  # someone else on the thread (a Cc'd colleague) wrote
            _add_participant(conn, row.id, contact_id, msg.sender.email)
        return row.id, _touch(conn, row, msg, now)
    return _create_conversation(conn, channel_id, contact_id, msg, now)


def _columns() -> Any:
    c = conversations.c
    return select(c.id, c.channel_id, c.contact_id, c.status, c.assignee_id, c.resolved_at, c.waiting_since,
                  c.thread_key, c.needs_routing)


def _load(conn: Connection, *where: Any) -> Any:
    return conn.execute(_columns().where(*where).order_by(conversations.c.id.desc()).limit(1)).first()


def _touch(conn: Connection, row: Any, msg: InboundMessage, now: Any) -> bool:
    """A customer wrote again: the conversation is open and waiting for us."""
    c = conversations.c
    values: dict[str, Any] = {"last_message_at": now, "updated_at": now}
    if row.waiting_since is None:
        values["waiting_since"] = now
    if row.status != "open":
        values["status"] = "open"
        values["snoozed_until"] = None
    if row.status == "resolved":
        # Reopened by the customer: back through the router (the agent's capacity was released).
        values.update(assignee_id=None, resolved_at=None, needs_routing=True, route_attempts=1, route_error=None)
        if row.thread_key:
            taken = conn.execute(
                select(c.id).where(c.channel_id == row.channel_id, c.open_key == row.thread_key, c.id != row.id)
            ).first()
            if taken is None:
                values["open_key"] = row.thread_key
        conn.execute(update(conversations).where(c.id == row.id).values(**values))
        return True
    needs_routing = row.assignee_id is None
    if needs_routing and row.needs_routing:  # a routing job is due already: this one's attempt too
        values.update(route_attempts=c.route_attempts + 1)
    elif needs_routing:  # waiting in the queue, or given up: the new message starts afresh
        values.update(needs_routing=True, route_attempts=1, route_error=None)
    conn.execute(update(conversations).where(c.id == row.id).values(**values))
    return needs_routing


def _create_conversation(
    conn: Connection, channel_id: int, contact_id: int, msg: InboundMessage, now: Any
) -> tuple[int, bool]:
    c = conversations.c
    key = msg.thread_key[:400] if msg.thread_key else None
    conv_id = conn.execute(
        insert_ignore(conn, conversations, ["channel_id", "open_key"])
        .values(**conversation_row(channel_id, contact_id, msg, key, now))
        .returning(c.id)
    ).scalar()
    if conv_id is not None:
        return conv_id, True
    row = _load(conn, c.channel_id == channel_id, c.open_key == key)  # a concurrent first message won
    return row.id, _touch(conn, row, msg, now)


def _add_participants(
    conn: Connection, channel_id: int, conversation_id: int, people: Sequence[Identity]
) -> None:
    for who in people[:20]:
        _add_participant(conn, conversation_id, contact_for(conn, channel_id, who), who.email)


def _add_participant(conn: Connection, conversation_id: int, contact_id: int, email: str | None) -> None:
    conn.execute(
        insert_ignore(conn, participants, ["conversation_id", "contact_id"]).values(
            conversation_id=conversation_id, contact_id=contact_id, email=email
        )
    )


def apply_status(conn: Connection, channel_id: int, update_: StatusUpdate) -> Recorded:
    """Move an outbound message's delivery status forward (never back)."""
    rank = _RANK.get(update_.status)
    if rank is None:
        return Recorded(None, None)
    earlier = [status for status, r in _RANK.items() if r < rank]
    row = conn.execute(
        update(messages)
        .where(
            messages.c.channel_id == channel_id,
            messages.c.external_id == update_.external_id[:400],
            messages.c.direction == "out",
            messages.c.status.in_(earlier),
        )
        .values(status=update_.status, status_reason=clean(update_.reason))
        .returning(messages.c.id, messages.c.conversation_id)
    ).first()
    if row is None:
        return Recorded(None, None, duplicate=True)
    return Recorded(row.id, row.conversation_id)


def _naive(value: Any) -> Any:
    if value is None or value.tzinfo is None:
        return value
    from datetime import UTC

    return value.astimezone(UTC).replace(tzinfo=None)
