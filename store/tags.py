"""Conversation tags ("complaint", "refund"): added and removed by agents and by routing rules
(store.automation), shown in the conversation list and filtered on (``?tag=``, ``store.conversations.has_tag``). The basis of the
complaint reports."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, delete, select

from store.events import append, event
from store.models import utcnow
from store.sql import insert_ignore, tags

t = tags.c


def tags_of(engine: Engine, conversation_ids: Sequence[int]) -> dict[int, list[str]]:
    """Each conversation's tags, sorted; one query for them all."""
    found: dict[int, list[str]] = {cid: [] for cid in conversation_ids}
    if not conversation_ids:
        return found
    with engine.connect() as conn:
        for row in conn.execute(select(t.conversation_id, t.tag).where(t.conversation_id.in_(set(conversation_ids)))
                                .order_by(t.conversation_id, t.tag)):
            found[row.conversation_id].append(row.tag)
    return found


def add_tag(engine: Engine, conversation_id: int, tag: str, by: int | None) -> bool:
    """Tag a conversation; whether the tag is new on it (an event tells the inbox)."""
    now = utcnow()
    with engine.begin() as conn:
        added = conn.execute(insert_ignore(conn, tags, ["conversation_id", "tag"]).values(
            conversation_id=conversation_id, tag=tag, created_at=now)).rowcount
        if added:
            append(conn, [event("conversation.updated", conversation_id, at=now, tags_added=[tag], by=by)])
        return bool(added)


def remove_tag(engine: Engine, conversation_id: int, tag: str, by: int | None) -> bool:
    """Take a tag off a conversation; whether it had it."""
    now = utcnow()
    with engine.begin() as conn:
        gone = conn.execute(delete(tags).where(t.conversation_id == conversation_id, t.tag == tag)).rowcount
        if gone:
            append(conn, [event("conversation.updated", conversation_id, at=now, tags_removed=[tag], by=by)])
        return bool(gone)
