"""What the agents' inbox reads besides the list itself: each listed conversation's unread count,
preview and reply window (:func:`columns`, read in the list's own query), the views' counts, read
markers, and the contact panel.

Visibility is ``store.conversations.visible_to`` (the SQL form of ``router.access.may_see``)
everywhere here; nothing restates it.

Unread, for an agent: the customer's messages (inbound, not private) after the agent's read
marker (``conversation_reads``), which :func:`mark_read` moves to the conversation's newest message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, case, func, select, update

from store.conversations import summaries, visible_to
from store.dialect import insert_ignore
from store.events import append, event
from store.models import MAX_ID
from store.outbound import window_end
from store.sql import channels, contacts, conversations, identities, messages, reads

c = conversations.c
m = messages.c
r = reads.c

PREVIEW = 140  # characters of the last message shown in the list
OPEN = ("open", "pending")  # the conversations the counts count
CONTACT_CONVERSATIONS = 100  # at most this many in the contact panel, newest first


@dataclasses.dataclass(frozen=True, slots=True)
class Extra:
    """What the list shows of a conversation beyond its row."""

    unread: int = 0
    preview: str | None = None
    reply_window_ends_at: datetime | None = None


def columns(agent_id: int) -> list[Any]:
    """What the list shows beyond a conversation's row, as columns of a query over
    ``conversations`` (correlated, so computed for the rows it returns, e.g. a page): ``unread``
    (the agent's), ``preview`` and ``last_in_at`` (the customer's last message, for the reply
    window). Each reads ix_messages_conversation for its conversation alone."""
    mine = and_(r.agent_id == agent_id, r.conversation_id == m.conversation_id)
    unread = (select(func.count()).select_from(messages.outerjoin(reads, mine))
              .where(m.conversation_id == c.id, m.direction == "in", m.private.is_(False),
                     m.id > func.coalesce(r.last_read_message_id, 0)))
    preview = select(func.substr(m.text, 1, PREVIEW)).where(m.conversation_id == c.id).order_by(m.id.desc()).limit(1)
    last_in = select(func.max(m.created_at)).where(m.conversation_id == c.id, m.direction == "in")
    return [unread.scalar_subquery().label("unread"), preview.scalar_subquery().label("preview"),
            last_in.scalar_subquery().label("last_in_at")]


def extra(row: Any) -> Extra:
    """A row read with :func:`columns` (and ``channel_kind``) as what the list shows."""
    return Extra(unread=int(row.unread or 0), preview=row.preview,
                 reply_window_ends_at=window_end(row.channel_kind, row.last_in_at))


def extras(engine: Engine, agent_id: int, rows: Sequence[Any]) -> dict[int, Extra]:
    """:func:`extra` for conversation rows read without :func:`columns` (one query)."""
    if not rows:
        return {}
    with engine.connect() as conn:
        found = conn.execute(
            select(c.id, channels.c.kind.label("channel_kind"), *columns(agent_id))
            .join(channels, channels.c.id == c.channel_id).where(c.id.in_([row.id for row in rows]))
        ).all()
    out = {x.id: extra(x) for x in found}
    return {row.id: out.get(row.id, Extra()) for row in rows}


def counts(engine: Engine, agent_id: int, *, admin: bool) -> dict[str, int]:
    """The inbox's counters over open and pending conversations the agent may see: ``mine``
    (assigned to them), ``unassigned`` (open, nobody's), ``all``, and ``unread`` (those with a
    message unread to them)."""
    # The conversation's newest customer message against the caller's marker: one probe at the end
    # of ix_messages_conversation a conversation (index only on PostgreSQL), not a scan of its messages.
    newest_in = (select(func.max(m.id)).where(m.conversation_id == c.id, m.direction == "in", m.private.is_(False))
                 .scalar_subquery())
    unread = newest_in > func.coalesce(r.last_read_message_id, 0)
    query = select(
        func.count(),
        func.sum(case((c.assignee_id == agent_id, 1), else_=0)),
        func.sum(case((and_(c.status == "open", c.assignee_id.is_(None)), 1), else_=0)),
        func.sum(case((unread, 1), else_=0)),
    ).select_from(conversations.outerjoin(reads, and_(r.agent_id == agent_id, r.conversation_id == c.id))).where(
        c.status.in_(OPEN), visible_to(agent_id, admin=admin))
    with engine.connect() as conn:
        total, mine, unassigned, unread_n = conn.execute(query).one()
    return {"mine": int(mine or 0), "unassigned": int(unassigned or 0), "all": int(total or 0),
            "unread": int(unread_n or 0)}


def mark_read(engine: Engine, agent_id: int, conversation_id: int) -> int | None:
    """Move the agent's read marker to the conversation's newest message (never back), with a
    ``conversation.read`` event for that agent alone (their other tabs). Returns the marker
    (None: the conversation has no message yet, nothing written)."""
    with engine.begin() as conn:
        newest = conn.execute(select(func.max(m.id)).where(m.conversation_id == conversation_id)).scalar()
        if newest is None:
            return None
        conn.execute(insert_ignore(conn, reads, ["agent_id", "conversation_id"]).values(
            agent_id=agent_id, conversation_id=conversation_id, last_read_message_id=newest))
        conn.execute(update(reads).where(r.agent_id == agent_id, r.conversation_id == conversation_id,
                                         r.last_read_message_id < newest).values(last_read_message_id=newest))
        append(conn, [event("conversation.read", conversation_id, agent_id=agent_id, last_read_message_id=newest)])
        return newest


@dataclasses.dataclass(frozen=True, slots=True)
class ContactPanel:
    contact: Any
    identities: list[Any]
    conversations: list[Any]  # summary rows, newest first, only those the agent may see
    extras: dict[int, Extra]


def contact_panel(engine: Engine, contact_id: int, agent_id: int, *, admin: bool) -> ContactPanel | None:
    """A contact with their identities on every channel and the conversations of theirs the agent
    may see (newest first, at most CONTACT_CONVERSATIONS); None when there is no such contact or
    the agent may see none of their conversations (the same answer: ids reveal nothing)."""
    if not 0 < contact_id <= MAX_ID:
        return None
    with engine.connect() as conn:
        rows = conn.execute(
            summaries().add_columns(*columns(agent_id)).where(c.contact_id == contact_id, visible_to(agent_id, admin=admin))
            .order_by(c.id.desc()).limit(CONTACT_CONVERSATIONS)
        ).all()
        if not rows:
            return None
        contact = conn.execute(select(contacts).where(contacts.c.id == contact_id)).one()
        found = conn.execute(
            select(identities.c.channel_id, channels.c.kind.label("channel_kind"), identities.c.external_id)
            .join(channels, channels.c.id == identities.c.channel_id)
            .where(identities.c.contact_id == contact_id).order_by(identities.c.id)
        ).all()
    return ContactPanel(contact, list(found), list(rows), {row.id: extra(row) for row in rows})


__all__ = ["ContactPanel", "Extra", "columns", "contact_panel", "counts", "extra", "extras", "mark_read"]
