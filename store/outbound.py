"""Replies: stored first (``pending``), then claimed, sent and recorded by the deliver job.

A claim is a lease (``sending`` until ``lease_until``): two deliver jobs for one message never send
it at once, and a worker killed mid-send leaves a lease that expires, after which the sweep
enqueues the message again.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, or_, select, update

from connectors.base import Identity, OutboundMessage, SendResult
from store.models import utcnow
from store.sql import clean, contacts, conversations, identities, messages, participants

m = messages.c
c = conversations.c


def create_reply(
    engine: Engine,
    conversation_id: int,
    *,
    agent_id: int | None,
    text: str,
    private: bool = False,
    html: str | None = None,
    automatic: bool = False,
) -> int:
    """Store an agent's reply (``pending``, for the deliver job) or private note (never sent)."""
    now = utcnow()
    with engine.begin() as conn:
        conv = conn.execute(select(c.channel_id, c.status).where(c.id == conversation_id)).first()
        if conv is None:
            raise LookupError(f"conversation {conversation_id} does not exist")
        message_id = conn.execute(
            messages.insert()
            .values(
                conversation_id=conversation_id,
                channel_id=conv.channel_id,
                direction="out",
                author_agent_id=agent_id,
                text=clean(text) or "",
                html=clean(html),
                private=private,
                automatic=automatic,
                status="sent" if private else "pending",
                attempts=0,
                created_at=now,
            )
            .returning(m.id)
        ).scalar_one()
        if not private and not automatic:
            # The customer has an answer: no longer waiting; the first one is the first response.
            conn.execute(
                update(conversations)
                .where(c.id == conversation_id)
                .values(waiting_since=None, last_message_at=now, updated_at=now)
            )
            conn.execute(
                update(conversations)
                .where(c.id == conversation_id, c.first_response_at.is_(None))
                .values(first_response_at=now)
            )
        return message_id


@dataclasses.dataclass(frozen=True, slots=True)
class Claim:
    channel_id: int
    attempts: int
    message: OutboundMessage


def claim(engine: Engine, message_id: int, *, lease: float = 120.0) -> Claim | None:
    """Take a pending message (or one whose lease expired) for sending; None if it is not ours
    to send (already sent, failed, or held by another worker)."""
    now = utcnow()
    with engine.begin() as conn:
        row = conn.execute(
            update(messages)
            .where(
                m.id == message_id,
                m.direction == "out",
                m.private.is_(False),
                or_(m.status == "pending", (m.status == "sending") & (m.lease_until < now)),
            )
            .values(status="sending", lease_until=now + timedelta(seconds=lease), attempts=m.attempts + 1)
            .returning(m.attempts)
        ).first()
        if row is None:
            return None
        return Claim(*_context(conn, message_id, row.attempts))


def _context(conn: Any, message_id: int, attempts: int) -> tuple[int, int, OutboundMessage]:
    msg = conn.execute(
        select(m.id, m.conversation_id, m.channel_id, m.text, m.html, m.external_id, m.automatic).where(
            m.id == message_id
        )
    ).one()
    conv = conn.execute(select(c.id, c.contact_id, c.subject).where(c.id == msg.conversation_id)).one()
    contact = conn.execute(
        select(contacts.c.name, contacts.c.email, contacts.c.phone).where(contacts.c.id == conv.contact_id)
    ).one()
    handle = conn.execute(
        select(identities.c.external_id)
        .where(identities.c.contact_id == conv.contact_id, identities.c.channel_id == msg.channel_id)
        .order_by(identities.c.id)
        .limit(1)
    ).scalar()
    thread = conn.execute(
        select(m.external_id, m.direction)
        .where(m.conversation_id == conv.id, m.external_id.is_not(None), m.id != message_id, m.private.is_(False))
        .order_by(m.id)
    ).all()
    last_in = next((t.external_id for t in reversed(thread) if t.direction == "in"), None)
    cc = conn.execute(
        select(participants.c.email).where(participants.c.conversation_id == conv.id, participants.c.email.is_not(None))
    ).scalars()
    out = OutboundMessage(
        message_id=msg.id,
        conversation_id=conv.id,
        conversation_number=conv.id,
        to=Identity(external_id=handle or contact.email or contact.phone or "", name=contact.name,
                    email=contact.email, phone=contact.phone),
        text=msg.text,
        html=msg.html,
        subject=conv.subject,
        external_id=msg.external_id,
        in_reply_to=last_in,
        references=tuple(t.external_id for t in thread[-30:]),
        cc=tuple(Identity(external_id=e, email=e) for e in cc if e != contact.email),
        automatic=msg.automatic,
    )
    return msg.channel_id, attempts, out


def set_external_id(engine: Engine, message_id: int, external_id: str) -> None:
    """Keep an id chosen before sending (e.g. a Message-ID) so a retry reuses it."""
    with engine.begin() as conn:
        conn.execute(update(messages).where(m.id == message_id).values(external_id=external_id))


def mark_sent(engine: Engine, message_id: int, result: SendResult) -> None:
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            update(messages)
            .where(m.id == message_id, m.status == "sending")
            .values(status=result.status, external_id=result.external_id or m.external_id, sent_at=now,
                    lease_until=None, status_reason=None, next_attempt_at=None)
        )


def mark_retry(engine: Engine, message_id: int, reason: str, delay: float) -> None:
    """A transient failure: back to pending, with the reason the agent sees meanwhile."""
    with engine.begin() as conn:
        conn.execute(
            update(messages)
            .where(m.id == message_id, m.status == "sending")
            .values(status="pending", status_reason=clean(reason), lease_until=None,
                    next_attempt_at=utcnow() + timedelta(seconds=delay))
        )


def mark_failed(engine: Engine, message_id: int, reason: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(messages)
            .where(m.id == message_id, m.status.in_(("pending", "sending")))
            .values(status="failed", status_reason=clean(reason), lease_until=None, next_attempt_at=None)
        )
