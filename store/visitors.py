"""Web chat visitors: what the widget's endpoints (web.webchat) read and write, and whether a
visitor is still here (:func:`present`), which the deliver job asks before sending a reply by the
channel's fallback email too.

A visitor is named on their channel by the contact identity's external id (``v:<random>`` for an
anonymous one, ``u:<shop's customer id>`` for a verified one); their conversations are the
channel's conversations with the thread key ``visitor:<that id>``. A visitor sees only those
conversations' public messages sent on the web chat channel itself (not private notes, not the
email copies of replies).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update

from store.events import append, event
from store.models import utcnow
from store.sql import agents, attachments, clean, contacts, conversations, identities, insert_ignore
from store.sql import messages, reads, visitors

v, m, c = visitors.c, messages.c, conversations.c
VISITOR_PREFIX = "visitor:"


def thread_key(visitor: str) -> str:
    return VISITOR_PREFIX + visitor


def ensure(engine: Engine, channel_id: int, visitor: str) -> None:
    """The visitor's row, made on their first visit."""
    with engine.begin() as conn:
        conn.execute(insert_ignore(conn, visitors, ["channel_id", "visitor"])
                     .values(channel_id=channel_id, visitor=visitor[:400], created_at=utcnow()))


def touch(engine: Engine, channel_id_visitors: Iterable[tuple[int, str]]) -> None:
    """The visitors' widgets have their streams open now: one statement a channel."""
    by_channel: dict[int, list[str]] = {}
    for channel_id, visitor in channel_id_visitors:
        by_channel.setdefault(channel_id, []).append(visitor)
    if not by_channel:
        return
    now = utcnow()
    with engine.begin() as conn:
        for channel_id, names in by_channel.items():
            conn.execute(update(visitors).where(v.channel_id == channel_id, v.visitor.in_(names))
                         .values(last_seen_at=now))


def present(engine: Engine, conversation_id: int, left_after: float) -> bool:
    """Whether the visitor of a web chat conversation is still here: their widget had its stream
    open within the last ``left_after`` seconds. False for a conversation of no visitor."""
    with engine.connect() as conn:
        conv = conn.execute(select(c.channel_id, c.thread_key).where(c.id == conversation_id)).first()
        if conv is None or not (conv.thread_key or "").startswith(VISITOR_PREFIX):
            return False
        seen = conn.execute(select(v.last_seen_at).where(
            v.channel_id == conv.channel_id, v.visitor == conv.thread_key[len(VISITOR_PREFIX):])).scalar()
    return seen is not None and seen >= utcnow() - timedelta(seconds=left_after)


def conversation_ids(engine: Engine, channel_id: int, visitor: str) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(select(c.id).where(c.channel_id == channel_id, c.thread_key == thread_key(visitor))
                                 .order_by(c.id)).scalars())


def threads_of(engine: Engine, conversation_ids: Sequence[int]) -> dict[int, tuple[int, str | None]]:
    """Each conversation's (channel id, thread key)."""
    found: dict[int, tuple[int, str | None]] = {}
    with engine.connect() as conn:
        for start in range(0, len(conversation_ids), 1000):
            chunk = conversation_ids[start:start + 1000]
            found.update((row.id, (row.channel_id, row.thread_key)) for row in conn.execute(
                select(c.id, c.channel_id, c.thread_key).where(c.id.in_(chunk))))
    return found


def shown_messages(engine: Engine, channel_id: int, visitor: str, after: int = 0, limit: int = 200) -> list[dict[str, Any]]:
    """The visitor's messages after message id ``after``, oldest first: public, on this channel."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(m.id, m.conversation_id, m.direction, m.text, m.status, m.created_at, agents.c.name.label("agent"))
            .join(conversations, c.id == m.conversation_id)
            .outerjoin(agents, agents.c.id == m.author_agent_id)
            .where(c.channel_id == channel_id, c.thread_key == thread_key(visitor), m.channel_id == channel_id,
                   m.private.is_(False), m.id > after)
            .order_by(m.id).limit(limit)).all()
        files: dict[int, list[dict[str, Any]]] = {}
        if rows:
            for f in conn.execute(select(attachments.c.id, attachments.c.message_id, attachments.c.filename,
                                         attachments.c.content_type, attachments.c.size)
                                  .where(attachments.c.message_id.in_([r.id for r in rows]))
                                  .order_by(attachments.c.id)):
                files.setdefault(f.message_id, []).append(
                    {"id": f.id, "filename": f.filename, "content_type": f.content_type, "size": f.size})
            # The visitor's messages an agent has read: "read" for them.
            seen = conn.execute(select(func.max(reads.c.last_read_message_id)).where(
                reads.c.conversation_id.in_({r.conversation_id for r in rows}))).scalar() or 0
        else:
            seen = 0
    return [{"id": r.id, "direction": r.direction, "text": r.text,
             "status": ("read" if r.id <= seen else "received") if r.direction == "in" else r.status,
             "created_at": r.created_at.isoformat() + "Z",
             "agent": (r.agent or "").split(" ")[0] or None if r.direction == "out" else None,
             "files": files.get(r.id, [])} for r in rows]


def attachment(engine: Engine, channel_id: int, visitor: str, attachment_id: int) -> Any:
    """One file of the visitor's conversations (filename, content_type, data), or None."""
    with engine.connect() as conn:
        return conn.execute(
            select(attachments.c.filename, attachments.c.content_type, attachments.c.data)
            .join(messages, m.id == attachments.c.message_id)
            .join(conversations, c.id == m.conversation_id)
            .where(attachments.c.id == attachment_id, c.channel_id == channel_id,
                   c.thread_key == thread_key(visitor), m.private.is_(False), m.channel_id == channel_id)).first()


def mark_read(engine: Engine, channel_id: int, visitor: str, up_to: int) -> list[int]:
    """The visitor has read the replies up to message ``up_to``: they move to ``read`` (with their
    ``message.status`` events). Returns the ids moved."""
    with engine.begin() as conn:
        mine = select(c.id).where(c.channel_id == channel_id, c.thread_key == thread_key(visitor))
        moved = conn.execute(
            update(messages)
            .where(m.conversation_id.in_(mine), m.direction == "out",
                   m.private.is_(False), m.channel_id == channel_id, m.id <= up_to,
                   m.status.in_(("sent", "delivered")))
            .values(status="read").returning(m.id, m.conversation_id)).all()
        append(conn, [event("message.status", row.conversation_id, message_id=row.id, status="read")
                      for row in sorted(moved)])
    return [row.id for row in moved]


def typing(engine: Engine, channel_id: int, visitor: str) -> int | None:
    """The visitor is typing: a ``visitor.typing`` event on their newest conversation (None: none yet)."""
    ids = conversation_ids(engine, channel_id, visitor)
    if not ids:
        return None
    with engine.begin() as conn:
        append(conn, [event("visitor.typing", ids[-1])])
    return ids[-1]


def leave_email(engine: Engine, channel_id: int, visitor: str, email: str) -> None:
    """The visitor left an address for replies: kept on their row, and on their contact when it has
    none (a contact made later takes it from the row, see :func:`email_of`)."""
    email = clean(email.strip()) or ""
    with engine.begin() as conn:
        conn.execute(update(visitors).where(v.channel_id == channel_id, v.visitor == visitor).values(email=email))
        contact_id = conn.execute(select(identities.c.contact_id).where(
            identities.c.channel_id == channel_id, identities.c.external_id == visitor)).scalar()
        if contact_id is not None:
            conn.execute(update(contacts).where(contacts.c.id == contact_id, contacts.c.email.is_(None))
                         .values(email=email))


def email_of(engine: Engine, channel_id: int, visitor: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(v.email).where(v.channel_id == channel_id, v.visitor == visitor)).scalar()



def unread(engine: Engine, message_id: int) -> bool:
    """Whether a reply went out and its reader has not read it (not ``read``, nor failed)."""
    with engine.connect() as conn:
        status = conn.execute(select(m.status).where(m.id == message_id)).scalar()
    return status in ("sent", "delivered")


def conversation_of(engine: Engine, message_id: int) -> int:
    with engine.connect() as conn:
        return conn.execute(select(m.conversation_id).where(m.id == message_id)).scalar_one()
