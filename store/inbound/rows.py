"""What an inbound message becomes in the tables: the rows of its message, contact, conversation
and attachments, each value cut to its column and free of NUL; and what storing it answers.

NUL is cleaned here, once, before a message reaches any statement: PostgreSQL text cannot hold
it (psycopg refuses the whole statement, and with it the batch), SQLite would store it raw. Both
databases store the same message the same way, and a resend with the same NUL finds its twin.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from datetime import UTC
from typing import Any

from sqlalchemy import Connection, select

from connectors.base import Event, Identity, InboundMessage, ReachabilityUpdate, StatusUpdate
from store.sql import clean, messages

ID_LENGTH = 400  # messages.external_id, identities.external_id, conversations.thread_key


@dataclasses.dataclass(frozen=True, slots=True)
class Recorded:
    """What storing one event gave: its message and conversation (None for an unknown receipt)."""

    message_id: int | None
    conversation_id: int | None
    duplicate: bool = False
    # The caller rings the router after commit (workers.after_inbound). The store has already
    # counted that routing attempt on the conversation, in the same transaction as the message.
    needs_routing: bool = False
    # Attachments stored ``pending`` (files the provider holds): the caller rings their fetches
    # after commit (workers.after_inbound).
    fetches: tuple[int, ...] = ()


class Duplicate(Exception):
    """A concurrent writer stored the message first; its transaction must be undone."""

    def __init__(self, message_id: int, conversation_id: int) -> None:
        super().__init__(message_id, conversation_id)
        self.recorded = Recorded(message_id, conversation_id, duplicate=True)


def _has_nul(*values: str | None) -> bool:
    for value in values:  # noqa: SIM110 - a plain loop: no generator a field on the hot path
        if value is not None and "\x00" in value:
            return True
    return False


def clean_identity(who: Identity) -> Identity:
    """``who`` with NUL cleaned from every field (the same object when there is none)."""
    if not _has_nul(who.external_id, who.name, who.email, who.phone):
        return who
    return dataclasses.replace(who, external_id=clean(who.external_id) or "", name=clean(who.name),
                               email=clean(who.email), phone=clean(who.phone))


def clean_status(update: StatusUpdate) -> StatusUpdate:
    """``update`` with NUL cleaned from its message id and reason."""
    if not _has_nul(update.external_id, update.reason):
        return update
    return dataclasses.replace(update, external_id=clean(update.external_id) or "", reason=clean(update.reason))


def clean_event(event: Event) -> Event:
    """``event`` with NUL cleaned from every text it carries: ids, sender, participants, thread,
    texts, language, attachment names (the same object when there is none: one ``in`` a field)."""
    if isinstance(event, StatusUpdate):
        return clean_status(event)
    if isinstance(event, ReachabilityUpdate):
        if not _has_nul(event.sender_external_id, event.reason):
            return event
        return dataclasses.replace(event, sender_external_id=clean(event.sender_external_id) or "",
                                   reason=clean(event.reason))
    if not isinstance(event, InboundMessage):  # edits are cleaned where they are applied
        return event
    m = event
    sender = clean_identity(m.sender)
    people = tuple(clean_identity(p) for p in m.participants) if m.participants else ()
    dirty_refs = any("\x00" in ref for ref in m.thread_refs)
    dirty_files = any(_has_nul(a.filename, a.content_type, a.content_id) for a in m.attachments)
    dirty_remote = any(_has_nul(a.ref, a.filename, a.content_type) for a in m.remote_attachments)
    if (sender is m.sender and all(p is q for p, q in zip(people, m.participants, strict=True)) and not dirty_refs
            and not dirty_files and not dirty_remote
            and not _has_nul(m.external_id, m.text, m.html, m.quoted, m.subject, m.thread_key, m.language,
                             m.parse_error)):
        return m
    return dataclasses.replace(
        m,
        external_id=clean(m.external_id) or "",
        sender=sender,
        participants=people,
        text=clean(m.text) or "",
        html=clean(m.html),
        quoted=clean(m.quoted),
        subject=clean(m.subject),
        thread_key=clean(m.thread_key),
        thread_refs=tuple(clean(ref) or "" for ref in m.thread_refs) if dirty_refs else m.thread_refs,
        language=clean(m.language),
        parse_error=clean(m.parse_error),
        attachments=tuple(
            dataclasses.replace(a, filename=clean(a.filename) or "", content_type=clean(a.content_type) or "",
                                content_id=clean(a.content_id))
            for a in m.attachments
        ) if dirty_files else m.attachments,
        remote_attachments=tuple(
            dataclasses.replace(a, ref=clean(a.ref) or "", filename=clean(a.filename) or "",
                                content_type=clean(a.content_type) or "")
            for a in m.remote_attachments
        ) if dirty_remote else m.remote_attachments,
    )


def contact_row(who: Identity, now: Any) -> dict[str, Any]:
    """The contacts row of a person first seen."""
    return {
        "name": who.name[:300] if who.name else None,
        "email": who.email[:320] if who.email else None,
        "phone": who.phone[:40] if who.phone else None,
        "created_at": now,
    }


def message_row(channel_id: int, conversation_id: int, contact_id: int, msg: InboundMessage, now: Any
                ) -> dict[str, Any]:
    """The messages row of an inbound message."""
    return {
        "conversation_id": conversation_id,
        "channel_id": channel_id,
        "direction": "in",
        "sender_contact_id": contact_id,
        "text": msg.text or "",
        "html": msg.html,
        "quoted": msg.quoted,
        "subject": msg.subject,
        "automatic": msg.automatic,
        "external_id": msg.external_id[:ID_LENGTH],
        "status": "received",
        "parse_error": msg.parse_error,
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
        "language": msg.language[:20] if msg.language else None,
        "language_source": "channel" if msg.language else None,  # the channel's hint: detection may replace it
        "subject": msg.subject,
        "thread_key": key,
        "open_key": key,
        "waiting_since": now,
        "needs_routing": True,
        "route_attempts": 1,  # the routing job rung after commit: its attempt, counted here
        "last_message_at": now,
        "created_at": now,
        "updated_at": now,
    }


def attachment_rows(message_id: int, msg: InboundMessage) -> list[dict[str, Any]]:
    """The attachments rows of a stored message whose bytes came with it (``done``)."""
    return [
        {
            "message_id": message_id,
            "filename": a.filename[:500] or "attachment",
            "content_type": a.content_type[:200],
            "size": a.size,
            "content_id": a.content_id[:400] if a.content_id else None,
            "inline": a.inline,
            "data": a.data,
            "fetch_state": "done",
            "fetch_attempts": 0,
        }
        for a in msg.attachments
    ]


def remote_attachment_rows(message_id: int, msg: InboundMessage, now: Any) -> list[dict[str, Any]]:
    """The attachments rows of a stored message's files that the provider holds: ``pending``, no
    bytes yet, due to be fetched now. ``size`` is the provider's word until the bytes come."""
    return [
        {
            "message_id": message_id,
            "filename": a.filename[:500] or "attachment",
            "content_type": a.content_type[:200] or "application/octet-stream",
            "size": max(0, a.size or 0),
            "inline": False,
            "data": b"",
            "ref": a.ref,
            "fetch_state": "pending",
            "fetch_attempts": 0,
            "next_fetch_at": now,
        }
        for a in msg.remote_attachments
    ]


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


def _naive(value: Any) -> Any:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)
