"""Which conversation a message joins: the one holding a message it replies to, the one its
ticket number names (for that conversation's own people only), or its thread's (a chat, a phone
number, a shop's thread key); a resolved one within the reopen period is reopened, else a new
conversation starts - unless the customer started one too recently (the ticket limit,
store.inbound.limits), which the message joins. The batch path (store.inbound.batch) settles its common case itself and
brings everything else here.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, or_, select, update

from connectors.base import InboundMessage
from store.inbound.contacts import add_participant
from store.inbound.limits import interval, joinable
from store.inbound.rows import ID_LENGTH, conversation_row
from store.settings import get_settings
from store.sql import conversations, insert_ignore, messages, participants


def conversation_for(
    conn: Connection, channel_id: int, contact_id: int, msg: InboundMessage, now: Any, *, found: int | None = None,
    refs_checked: bool = False, created: set[int] | None = None, limit: float | None = None,
) -> tuple[int, bool]:
    """Find the conversation the message belongs to (reopening it when recently resolved) or
    start one. Returns (conversation id, whether it needs routing). ``found``: the conversation
    of the message it replies to, when the caller knows it already; ``refs_checked``: the caller
    found none of its references stored; ``created``: gets the id of a conversation started here;
    ``limit``: the channel's ticket limit when the caller has read it (store.inbound.limits)."""
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
        key = msg.thread_key[:ID_LENGTH]
        # The thread's open conversation, else its last one if resolved (the reopen rule decides).
        row = conn.execute(
            conversation_columns()
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
            add_participant(conn, row.id, contact_id, msg.sender.email)
        return row.id, touch(conn, row, msg, now)
    # The ticket limit: too soon after the customer's last new conversation, join it instead.
    row = joinable(conn, channel_id, contact_id, now, limit if limit is not None else interval(conn, channel_id),
                   conversation_columns())
    if row is not None:
        return row.id, touch(conn, row, msg, now)
    return _create_conversation(conn, channel_id, contact_id, msg, now, created)


def conversation_columns() -> Any:
    """The conversation columns the threading rules read."""
    c = conversations.c
    return select(c.id, c.channel_id, c.contact_id, c.status, c.assignee_id, c.resolved_at, c.waiting_since,
                  c.thread_key, c.needs_routing)


def _load(conn: Connection, *where: Any) -> Any:
    return conn.execute(conversation_columns().where(*where).order_by(conversations.c.id.desc()).limit(1)).first()


def touch(conn: Connection, row: Any, msg: InboundMessage, now: Any) -> bool:
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
    conn: Connection, channel_id: int, contact_id: int, msg: InboundMessage, now: Any, created: set[int] | None
) -> tuple[int, bool]:
    c = conversations.c
    key = msg.thread_key[:ID_LENGTH] if msg.thread_key else None
    conv_id = conn.execute(
        insert_ignore(conn, conversations, ["channel_id", "open_key"])
        .values(**conversation_row(channel_id, contact_id, msg, key, now))
        .returning(c.id)
    ).scalar()
    if conv_id is not None:
        if created is not None:
            created.add(conv_id)
        return conv_id, True
    row = _load(conn, c.channel_id == channel_id, c.open_key == key)  # a concurrent first message won
    return row.id, touch(conn, row, msg, now)
