"""What the agents' inbox reads besides the list itself: each listed conversation's unread count,
preview and reply window (:func:`extras`, one grouped query a page), the views' counts, read
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
from store.outbound import reply_window
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


def _unread() -> Any:
    """Whether a message row is unread (inbound, not private, past the marker); ``reads`` must be
    outer-joined on the agent and the message's conversation (:func:`_reads_of`)."""
    return and_(m.direction == "in", m.private.is_(False), m.id > func.coalesce(r.last_read_message_id, 0))


def _reads_of(agent_id: int) -> Any:
    return and_(r.agent_id == agent_id, r.conversation_id == m.conversation_id)


def extras(engine: Engine, agent_id: int, rows: Sequence[Any]) -> dict[int, Extra]:
    """For conversation rows (with ``channel_kind``): unread count for the agent, preview, and
    when the reply window closes (from the customer's last message; None without a window or a
    customer message). Two queries whatever the number of rows."""
    ids = [row.id for row in rows]
    if not ids:
        return {}
    with engine.connect() as conn:
        grouped = conn.execute(
            select(m.conversation_id, func.max(m.id).label("last_id"),
                   func.max(case((m.direction == "in", m.created_at))).label("last_in_at"),
                   func.sum(case((_unread(), 1), else_=0)).label("unread"))
            .outerjoin(reads, _reads_of(agent_id))
            .where(m.conversation_id.in_(ids)).group_by(m.conversation_id)
        ).all()
        previews = dict(conn.execute(
            select(m.id, func.substr(m.text, 1, PREVIEW)).where(m.id.in_([g.last_id for g in grouped]))
        ).all()) if grouped else {}
    found = {g.conversation_id: g for g in grouped}
    out: dict[int, Extra] = {}
    for row in rows:
        g = found.get(row.id)
        if g is None:
            out[row.id] = Extra()
            continue
        window = reply_window(row.channel_kind)
        ends = g.last_in_at + window if window is not None and g.last_in_at is not None else None
        out[row.id] = Extra(unread=int(g.unread or 0), preview=previews.get(g.last_id), reply_window_ends_at=ends)
    return out


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
            summaries().where(c.contact_id == contact_id, visible_to(agent_id, admin=admin))
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
    return ContactPanel(contact, list(found), list(rows), extras(engine, agent_id, rows))


__all__ = ["ContactPanel", "Extra", "contact_panel", "counts", "extras", "mark_read"]
