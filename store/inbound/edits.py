"""Customers' edits of messages they sent (Telegram's edited messages): the message shows the new
text and when it was changed; the texts it had before are kept in its ``edits`` history, oldest
first. An edit of a message we do not hold, the same edit again, or an edit older than the one
shown changes nothing."""

from __future__ import annotations

import dataclasses
from datetime import UTC

from sqlalchemy import Connection, or_, select, update

from connectors.base import MessageEdit
from store.inbound.rows import ID_LENGTH, Recorded
from store.models import utcnow
from store.sql import clean, messages

m = messages.c


def clean_edit(edit: MessageEdit) -> MessageEdit:
    if "\x00" not in edit.external_id + edit.text:
        return edit
    return dataclasses.replace(edit, external_id=clean(edit.external_id) or "", text=clean(edit.text) or "")


def apply_edit(conn: Connection, channel_id: int, edit: MessageEdit) -> Recorded:
    """Show ``edit`` on the message it names. Returns that message, or ``duplicate=True`` when
    nothing changed."""
    edit = clean_edit(edit)
    when = edit.edited_at.astimezone(UTC).replace(tzinfo=None) if edit.edited_at else utcnow()
    row = conn.execute(
        select(m.id, m.conversation_id, m.text, m.edited_at, m.edits)
        .where(m.channel_id == channel_id, m.external_id == edit.external_id[:ID_LENGTH], m.direction == "in")
    ).first()
    if row is None or row.text == edit.text or (row.edited_at is not None and row.edited_at >= when):
        return Recorded(row.id if row else None, row.conversation_id if row else None, duplicate=True)
    history = [*(row.edits or []), {"text": row.text, "until": when.isoformat()}]
    changed = conn.execute(
        update(messages)
        .where(m.id == row.id, or_(m.edited_at.is_(None), m.edited_at < when))
        .values(text=edit.text, edited_at=when, edits=history)
    ).rowcount
    return Recorded(row.id, row.conversation_id, duplicate=not changed)
