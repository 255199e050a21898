"""Replies: stored first (``pending``), then claimed, sent and recorded by the deliver job.

A claim is a lease (``sending`` until ``lease_until``): two deliver jobs for one message never send
it at once. The lease is short (LEASE) and renewed while the send runs, so a worker killed
mid-send is taken over within seconds, and a slow send that is alive never is. A claim that takes
over an expired lease says so (``Claim.taken_over``): the previous attempt may have reached the
customer, and the deliver job decides whether a second send is safe.

The outcome of a send is written on a healthy connection: a write that fails because the
connection broke (PostgreSQL restarted, connections terminated) is tried again on a fresh one, so
a database blip between the send and its record never leaves the reply to be sent twice.

Each reply or note stored writes its ``message.created`` event, each status recorded its
``message.status`` event (store.events), in the same transaction.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.sql.dml import Update

from connectors import connector_class
from connectors.base import Attachment, Capabilities, Identity, OutboundMessage, SendResult
from connectors.errors import PermanentError
from store import media, reachability, sla
from store.events import append, event
from store.models import utcnow
from store.sql import attachments, channels, clean, contacts, conversations, messages, participants

log = logging.getLogger("omnidesk.store.outbound")

m = messages.c
c = conversations.c

LEASE = 15.0  # seconds a claim holds a reply; renewed while the send runs
RECORD_DELAYS = (0.05, 0.2, 0.5, 1.0, 2.0, 4.0, 8.0)  # retries of an outcome write on a broken connection


class ReplyRefused(ValueError):
    """A reply its conversation's channel cannot take (the API answers 422 with the reason)."""


class ReplyTooLong(ReplyRefused):
    """Longer than the conversation takes (its channel's ``max_text_length``, for this thread)."""


class AttachmentsRefused(ReplyRefused):
    """The reply carries files its conversation's channel cannot send: none at all (its
    ``supports_attachments`` capability is false), or not these (too many, too large, a type it
    does not take, an SMS abroad: ``Capabilities.check_files``). The API answers 422 with the
    reason; a private note may carry files on any channel."""


class ReplyWindowClosed(ReplyRefused):
    """The channel accepts replies only within a window after the customer's last message (its
    ``reply_window`` capability), and that window has closed. The API answers 422. ``templates``:
    the names of the channel's approved templates, which may still be sent."""

    def __init__(self, reason: str, templates: list[str] | None = None) -> None:
        super().__init__(reason)
        self.templates = templates or []


class UnknownTemplate(ValueError):
    """A reply names a template the channel's settings do not list. The API answers 422."""


def channel_templates(config: Any) -> dict[str, Any]:
    """The approved templates in a channel's settings (``templates: [{"name", ...}]``), by name."""
    listed = (config or {}).get("templates") or []
    return {t["name"]: t for t in listed if isinstance(t, dict) and isinstance(t.get("name"), str)}


def template_text(name: str, variables: dict[str, Any]) -> str:
    """What the agent reads for a template reply (the provider fills in the approved wording)."""
    shown = ", ".join(f"{k}={v}" for k, v in variables.items())
    return f"[template {name}]" + (f" {shown}" if shown else "")


def create_reply(
    engine: Engine,
    conversation_id: int,
    *,
    agent_id: int | None,
    text: str,
    private: bool = False,
    html: str | None = None,
    automatic: bool = False,
    files: Sequence[Attachment] = (),
    template: dict[str, Any] | None = None,
) -> int:
    """Store an agent's reply (``pending``, for the deliver job) or private note (never sent),
    with ``files`` as its attachments. ``template`` (``{"name", "variables"}``): one of the
    channel's approved templates instead of free text, allowed outside the reply window. Raises
    LookupError for no such conversation, ReplyWindowClosed for a free-text reply its channel no
    longer accepts, ContactUnreachable for a customer who cannot be written to on the channel
    (opted out, blocked us), AttachmentsRefused for files on a reply its channel cannot send them
    on, UnknownTemplate for a template the channel does not list, ReplyTooLong for a text
    longer than the conversation takes; private notes are always taken."""
    now = utcnow()
    with engine.begin() as conn:
        conv = conn.execute(
            select(c.channel_id, c.contact_id, c.status, c.thread_key, channels.c.kind, channels.c.config)
            .join(channels, channels.c.id == c.channel_id)
            .where(c.id == conversation_id)
        ).first()
        if conv is None:
            raise LookupError(f"conversation {conversation_id} does not exist")
        if not private:
            reachability.check(conn, conv.contact_id, conv.channel_id)
            if files:
                _check_files(conn, conversation_id, conv, files)
        if template is not None:
            known = channel_templates(conv.config)
            if private or template.get("name") not in known:
                names = ", ".join(known) or "none"
                raise UnknownTemplate(f"no template {template.get('name')!r} on this channel (its templates: {names})")
            template = {"name": template["name"], "variables": dict(template.get("variables") or {})}
            text = template_text(template["name"], template["variables"])
        elif not private:
            try:
                _check_reply_window(conn, conversation_id, conv.kind, now)
            except ReplyWindowClosed as exc:
                names = list(channel_templates(conv.config))
                if names:
                    exc = ReplyWindowClosed(f"{exc}; send one of the channel's approved templates instead: "
                                            f"{', '.join(names)}", names)
                raise exc from None
            _check_length(conn, conversation_id, conv, text)
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
                template=template,
                attempts=0,
                created_at=now,
            )
            .returning(m.id)
        ).scalar_one()
        if files:
            conn.execute(attachments.insert(), [
                {"message_id": message_id, "filename": clean(file.filename) or "file",
                 "content_type": file.content_type, "size": file.size, "content_id": file.content_id,
                 "inline": file.inline, "data": file.data} for file in files])
        if not private and not automatic:
            # The customer has an answer: no longer waiting; the first one is the first response.
            sla.answer_clocks(conn, conversation_id, now)
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
        append(conn, [event("message.created", conversation_id, at=now, message_id=message_id, direction="out",
                            private=private)])
        return message_id


def copy_to(engine: Engine, message_id: int, channel_id: int) -> int | None:
    """A copy of reply ``message_id`` (text, author, files) to send on another channel of the same
    conversation (web chat's fallback email once the visitor has left): ``pending``, for the deliver
    job; the conversation shows both. A second call (the original's send taken over) makes no
    second copy: None then."""
    now = utcnow()
    with engine.begin() as conn:
        original = conn.execute(select(m.conversation_id, m.author_agent_id, m.text, m.html, m.automatic)
                                .where(m.id == message_id)).one()
        if conn.execute(select(m.id).where(m.conversation_id == original.conversation_id, m.channel_id == channel_id,
                                           m.direction == "out", m.id > message_id, m.text == original.text,
                                           m.private.is_(False))).first():
            return None
        copy_id = conn.execute(messages.insert().values(
            conversation_id=original.conversation_id, channel_id=channel_id, direction="out",
            author_agent_id=original.author_agent_id, text=original.text, html=original.html, private=False,
            automatic=original.automatic, status="pending", attempts=0, created_at=now,
        ).returning(m.id)).scalar_one()
        files = conn.execute(select(attachments.c.filename, attachments.c.content_type, attachments.c.size,
                                    attachments.c.content_id, attachments.c.inline, attachments.c.data)
                             .where(attachments.c.message_id == message_id)).all()
        if files:
            conn.execute(attachments.insert(), [dict(f._mapping, message_id=copy_id) for f in files])
        append(conn, [event("message.created", original.conversation_id, at=now, message_id=copy_id,
                            direction="out", private=False)])
    return copy_id


def capabilities(kind: str) -> Capabilities | None:
    """The channel kind's declared capabilities; None for a kind this installation cannot load
    (its deliver job says so)."""
    try:
        return connector_class(kind).capabilities
    except (KeyError, ImportError):
        return None


def reply_window(kind: str) -> timedelta | None:
    """How long after the customer's last message the channel takes replies; None: any time."""
    found = capabilities(kind)
    return found.reply_window if found is not None else None


def window_end(kind: str, last_in: datetime | None) -> datetime | None:
    """When a conversation on a ``kind`` channel whose customer last wrote at ``last_in`` stops
    taking free-text replies; None: it never does (no window), or nothing to answer yet. The one
    rule: enforced by create_reply, shown by the inbox's list."""
    window = reply_window(kind)
    return None if window is None or last_in is None else last_in + window


def _check_reply_window(conn: Any, conversation_id: int, kind: str, now: Any) -> None:
    window = reply_window(kind)
    if window is None:
        return
    ends = window_end(kind, _last_in(conn, conversation_id))
    if ends is None or now > ends:
        seconds = window.total_seconds()
        amount, unit = (seconds / 3600, "hour") if seconds >= 3600 else (seconds / 60, "minute")
        span = f"{amount:g} {unit}{'' if amount == 1 else 's'}"
        raise ReplyWindowClosed(f"this channel takes replies only within {span} of the customer's "
                                "last message, and that time has passed")


def _thread_capabilities(conn: Any, conversation_id: int, conv: Any) -> Capabilities | None:
    """What a reply in this conversation can be (its channel's capabilities for its thread)."""
    try:
        connector = connector_class(conv.kind)
    except (KeyError, ImportError):
        return None
    last_in = conn.execute(
        select(m.external_id).where(m.conversation_id == conversation_id, m.direction == "in",
                                    m.external_id.is_not(None)).order_by(m.id.desc()).limit(1)
    ).scalar()
    return connector.capabilities_for(conv.thread_key, last_in)


def _check_length(conn: Any, conversation_id: int, conv: Any, text: str) -> None:
    found = _thread_capabilities(conn, conversation_id, conv)
    try:
        if found is not None:
            found.check_text(text)
    except PermanentError as exc:
        raise ReplyTooLong(exc.reason) from None


def _check_files(conn: Any, conversation_id: int, conv: Any, files: Sequence[Attachment]) -> None:
    found = _thread_capabilities(conn, conversation_id, conv)
    if found is None:
        return
    if not found.supports_attachments and found.no_attachments_reason is None:
        raise AttachmentsRefused("this channel cannot send attachments; send the text alone, or the files in a "
                                 "private note")
    try:
        found.check_files(files)
    except PermanentError as exc:
        raise AttachmentsRefused(exc.reason) from None


def _last_in(conn: Any, conversation_id: int) -> datetime | None:
    return conn.execute(
        select(func.max(m.created_at)).where(m.conversation_id == conversation_id, m.direction == "in")
    ).scalar()


@dataclasses.dataclass(frozen=True, slots=True)
class Claim:
    channel_id: int
    attempts: int
    message: OutboundMessage
    taken_over: bool = False  # the lease of an earlier attempt expired: it may have been sent
    created_at: datetime | None = None  # when the reply was stored: no attempt is older


def claim(engine: Engine, message_id: int, *, lease: float | None = None) -> Claim | None:
    """Take a pending message (or one whose lease expired) for sending; None if it is not ours
    to send (already sent, failed, or held by another worker)."""
    now = utcnow()
    mine = m.id == message_id, m.direction == "out", m.private.is_(False)
    take = dict(status="sending", lease_until=now + timedelta(seconds=lease or LEASE), attempts=m.attempts + 1)
    with engine.begin() as conn:
        row = conn.execute(update(messages).where(*mine, m.status == "pending").values(**take)
                           .returning(m.attempts, m.created_at)).first()
        taken_over = False
        if row is None:  # rarely: an attempt whose worker stopped (or lost the database) mid-send
            row = conn.execute(update(messages).where(*mine, m.status == "sending", m.lease_until < now)
                               .values(**take).returning(m.attempts, m.created_at)).first()
            taken_over = True
        if row is None:
            return None
        return Claim(*_context(conn, message_id, row.attempts), taken_over=taken_over, created_at=row.created_at)


def renew_lease(engine: Engine, message_id: int, lease: float | None = None) -> bool:
    """Extend the claim of a reply being sent; False when it is no longer ``sending``."""
    with engine.begin() as conn:
        done = conn.execute(update(messages).where(m.id == message_id, m.status == "sending")
                            .values(lease_until=utcnow() + timedelta(seconds=lease or LEASE)))
        return done.rowcount > 0


def _context(conn: Any, message_id: int, attempts: int) -> tuple[int, int, OutboundMessage]:
    # The reply, its conversation and its contact in one round trip (the deliver job's hot path).
    msg = conv = contact = conn.execute(
        select(m.id, m.conversation_id, m.channel_id, m.text, m.html, m.external_id, m.automatic, m.template,
               c.contact_id, c.subject, c.thread_key, contacts.c.name, contacts.c.email, contacts.c.phone)
        .join(conversations, c.id == m.conversation_id).join(contacts, contacts.c.id == c.contact_id)
        .where(m.id == message_id)
    ).one()
    handle = conn.execute(reachability.reply_identity(conv.contact_id, msg.channel_id)).first()
    handle = handle.external_id if handle is not None else None
    thread = conn.execute(
        select(m.external_id, m.direction)
        .where(m.conversation_id == msg.conversation_id, m.external_id.is_not(None), m.id != message_id,
               m.private.is_(False))
        .order_by(m.id)
    ).all()
    last_in = next((t.external_id for t in reversed(thread) if t.direction == "in"), None)
    cc = conn.execute(
        select(participants.c.email).where(participants.c.conversation_id == msg.conversation_id,
                                           participants.c.email.is_not(None))
    ).scalars()
    files = conn.execute(
        select(attachments.c.id, attachments.c.filename, attachments.c.content_type, attachments.c.data,
               attachments.c.content_id, attachments.c.inline)
        .where(attachments.c.message_id == message_id).order_by(attachments.c.id)
    ).all()
    out = OutboundMessage(
        message_id=msg.id,
        conversation_id=msg.conversation_id,
        conversation_number=msg.conversation_id,
        to=Identity(external_id=handle or contact.email or contact.phone or "", name=contact.name,
                    email=contact.email, phone=contact.phone),
        text=msg.text,
        html=msg.html,
        subject=conv.subject,
        external_id=msg.external_id,
        in_reply_to=last_in,
        references=tuple(t.external_id for t in thread[-30:]),
        thread_key=conv.thread_key,
        cc=tuple(Identity(external_id=e, email=e) for e in cc if e != contact.email),
        attachments=tuple(Attachment(f.filename, f.content_type, f.data, f.content_id, f.inline,
                                     url=media.signed_url(f.id)) for f in files),
        automatic=msg.automatic,
        template=msg.template,
    )
    return msg.channel_id, attempts, out


def set_external_id(engine: Engine, message_id: int, external_id: str) -> None:
    """Keep an id chosen before sending (e.g. a Message-ID) so a retry reuses it."""
    _record(engine, update(messages).where(m.id == message_id).values(external_id=external_id))


def mark_sent(engine: Engine, message_id: int, result: SendResult, note: str | None = None) -> None:
    """The send worked; ``note`` (and the result's own) is kept as the reason the agent reads."""
    reason = "; ".join(n for n in (note, result.note) if n) or None
    _record(engine, update(messages)
            .where(m.id == message_id, m.status == "sending")
            .values(status=result.status, external_id=result.external_id or m.external_id, sent_at=utcnow(),
                    lease_until=None, status_reason=clean(reason), next_attempt_at=None), result.status)


def mark_retry(engine: Engine, message_id: int, reason: str, delay: float) -> None:
    """A transient failure: back to pending, with the reason the agent sees meanwhile."""
    _record(engine, update(messages)
            .where(m.id == message_id, m.status == "sending")
            .values(status="pending", status_reason=clean(reason), lease_until=None,
                    next_attempt_at=utcnow() + timedelta(seconds=delay)), "pending")


def mark_failed(engine: Engine, message_id: int, reason: str, *, unreachable: bool = False) -> None:
    """The reply will not go: ``failed`` with ``reason``. ``unreachable``: the channel said the
    customer cannot be written to; their identity there is marked too, in the same transaction
    (store.reachability), so later replies are refused at once."""
    _record(engine, update(messages)
            .where(m.id == message_id, m.status.in_(("pending", "sending")))
            .values(status="failed", status_reason=clean(reason), lease_until=None, next_attempt_at=None), "failed",
            unreachable=reason if unreachable else None)


def defer(engine: Engine, message_id: int, delay: float) -> None:
    """Put a claimed reply back to ``pending`` for ``delay`` seconds, its claim not counted as an
    attempt: the send pacing had no slot sooner (workers' deliver job). Nothing the agent sees
    changes (``sending`` writes no event), so none is written."""
    _record(engine, update(messages).where(m.id == message_id, m.status == "sending")
            .values(status="pending", lease_until=None, attempts=m.attempts - 1,
                    next_attempt_at=utcnow() + timedelta(seconds=delay)))


def _mark_recipient(conn: Any, conversation_id: int, reason: str) -> list[dict[str, Any]]:
    conv = conn.execute(select(c.contact_id, c.channel_id).where(c.id == conversation_id)).one()
    found = conn.execute(reachability.reply_identity(conv.contact_id, conv.channel_id)).first()
    return [] if found is None else [reachability.mark(conn, found.id, conv.contact_id, reason)]


def _record(engine: Engine, statement: Update, status: str | None = None, *, unreachable: str | None = None) -> None:
    """Run one idempotent status write, again on a fresh connection when the connection broke
    (the pool drops a broken connection, and the others of its age, when the error is raised).
    ``status``: the write moves a reply to it; the move (if any) writes its ``message.status`` event.
    ``unreachable``: a reason to mark the reply's recipient identity with, if the write moved it."""
    if status is not None:
        statement = statement.returning(m.id, m.conversation_id)
    for delay in (*RECORD_DELAYS, None):
        try:
            with engine.begin() as conn:
                result = conn.execute(statement)
                moved = result.all() if status is not None else ()
                told = [event("message.status", row.conversation_id, message_id=row.id, status=status)
                        for row in moved]
                if unreachable is not None and moved:
                    told.extend(_mark_recipient(conn, moved[0].conversation_id, unreachable))
                append(conn, told)
            return
        except (OperationalError, InterfaceError, DBAPIError) as exc:
            broken = exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError))
            if delay is None or not broken:
                raise
            log.warning("recording a reply's status: %s; trying again on a fresh connection", type(exc).__name__)
            time.sleep(delay)
