"""Recording what customers send: exactly once, in few statements, on SQLite and PostgreSQL.

The unique key (channel_id, external_id) on messages makes every redelivery a no-op; the unique
key (channel_id, open_key) on conversations makes two first messages of one thread, stored at the
same moment, meet in one conversation.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, or_, select, update

from connectors.base import Event, Identity, InboundMessage, StatusUpdate
from store.models import utcnow
from store.settings import get_settings
from store.sql import (
    attachments,
    channels,
    clean,
    contacts,
    conversations,
    identities,
    insert_ignore,
    insert_many,
    messages,
    participants,
)

log = logging.getLogger(__name__)

# Delivery statuses only move forward; "failed" may follow anything before "delivered".
_RANK = {"pending": 0, "sending": 1, "sent": 2, "failed": 3, "delivered": 3, "read": 4}


@dataclasses.dataclass(frozen=True, slots=True)
class Recorded:
    message_id: int | None
    conversation_id: int | None
    duplicate: bool = False
    needs_routing: bool = False  # the caller enqueues route(conversation_id) after commit


class _Duplicate(Exception):
    def __init__(self, message_id: int, conversation_id: int) -> None:
        self.recorded = Recorded(message_id, conversation_id, duplicate=True)


def record_inbound(
    engine: Engine,
    channel_id: int,
    events: Sequence[Event],
    *,
    cursor: dict[str, Any] | None = None,
) -> list[Recorded]:
    """Store ``events`` (and move the channel's ``cursor``) in one transaction.

    Messages already stored come back with ``duplicate=True``. Delivery receipts move outbound
    statuses forward and come back with ``message_id`` of the message they named (None if
    unknown). Should the batch fail as a whole, each message is retried alone, and one that
    cannot be stored even then is stored as a bare record of its raw source with the error, so a
    poller never stalls on one bad message.
    """
    if len(events) == 1 and cursor is None:
        return [_record_alone(engine, channel_id, events[0])]
    try:
        with engine.begin() as conn:
            results = _record_batch(conn, channel_id, events)
            if cursor is not None:
                _save_cursor(conn, channel_id, cursor)
            return results
    except _Duplicate:
        log.info("channel %s: a concurrent writer stored part of this batch; storing one by one", channel_id)
    except Exception:
        log.exception("channel %s: batch of %d failed; storing one by one", channel_id, len(events))
    results = []
    for event in events:
        try:
            results.append(_record_alone(engine, channel_id, event))
        except Exception as exc:  # noqa: BLE001 - keep it, with the error, rather than lose it
            results.append(_record_unstorable(engine, channel_id, event, exc))
    with engine.begin() as conn:
        if cursor is not None:
            _save_cursor(conn, channel_id, cursor)
    return results


def _save_cursor(conn: Connection, channel_id: int, cursor: dict[str, Any]) -> None:
    conn.execute(update(channels).where(channels.c.id == channel_id).values(cursor=cursor))


def _record_alone(engine: Engine, channel_id: int, event: Event) -> Recorded:
    """One event in its own transaction; a duplicate rolls back whatever it had created."""
    try:
        with engine.begin() as conn:
            if isinstance(event, StatusUpdate):
                return apply_status(conn, channel_id, event)
            return _record_message(conn, channel_id, event)
    except _Duplicate as dup:
        return dup.recorded


def _record_batch(conn: Connection, channel_id: int, events: Sequence[Event]) -> list[Recorded]:
    """A batch in one transaction, with a handful of statements for the whole of it: one look
    for the messages already stored, then the senders, the conversations and the messages each
    written with multi-row statements (see :func:`_store_many`). A message a concurrent writer
    stores meanwhile raises _Duplicate, which undoes the whole batch: the caller then stores it
    one by one."""
    ids = list({e.external_id[:400] for e in events if isinstance(e, InboundMessage)})
    known: dict[str, tuple[int, int]] = {}
    for start in range(0, len(ids), 500):
        for row in conn.execute(
            select(messages.c.external_id, messages.c.id, messages.c.conversation_id).where(
                messages.c.channel_id == channel_id, messages.c.external_id.in_(ids[start:start + 500])
            )
        ):
            known[row.external_id] = (row.id, row.conversation_id)
    results: list[Recorded | None] = [None] * len(events)
    fresh: dict[str, int] = {}  # external id -> position of its first copy in this batch
    for n, event in enumerate(events):
        if isinstance(event, StatusUpdate):
            results[n] = apply_status(conn, channel_id, event)
        elif event.external_id[:400] in known:
            results[n] = Recorded(*known[event.external_id[:400]], duplicate=True)
        elif event.external_id[:400] not in fresh:
            fresh[event.external_id[:400]] = n
    if fresh:
        stored = _store_many(conn, channel_id, [events[n] for n in fresh.values()])  # type: ignore[misc]
        for n, recorded in zip(fresh.values(), stored, strict=True):
            results[n] = recorded
    for n, event in enumerate(events):
        if results[n] is None:  # a second copy of a message earlier in this batch
            first = results[fresh[event.external_id[:400]]]
            results[n] = Recorded(first.message_id, first.conversation_id, duplicate=True)  # type: ignore[union-attr]
    return results  # type: ignore[return-value]


def _store_many(conn: Connection, channel_id: int, batch: Sequence[InboundMessage]) -> list[Recorded]:
    """New messages (none of them stored yet, no two alike) in few statements whatever their number."""
    now = utcnow()
    contact_ids = _contacts_for_many(conn, channel_id, [m.sender for m in batch], now)
    threads = _conversations_for_many(conn, channel_id, batch, contact_ids, now)
    rows = [
        {
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
        for msg, contact_id, (conversation_id, _) in zip(batch, contact_ids, threads, strict=True)
    ]
    stored = dict(insert_many(conn, messages, rows, conflict=["channel_id", "external_id"],
                              returning=("external_id", "id")))
    if len(stored) < len(rows):  # a concurrent delivery stored one of them first
        winner = next(r for r in rows if r["external_id"] not in stored)
        row = conn.execute(
            select(messages.c.id, messages.c.conversation_id).where(
                messages.c.channel_id == channel_id, messages.c.external_id == winner["external_id"]
            )
        ).one()
        raise _Duplicate(row.id, row.conversation_id)
    insert_many(conn, attachments, [row for msg in batch
                                    for row in _attachment_rows(stored[msg.external_id[:400]], msg)])
    for msg, (conversation_id, _) in zip(batch, threads, strict=True):
        if msg.participants:
            _add_participants(conn, channel_id, conversation_id, msg.participants)
    return [
        Recorded(stored[msg.external_id[:400]], conversation_id, needs_routing=needs_routing)
        for msg, (conversation_id, needs_routing) in zip(batch, threads, strict=True)
    ]


def _contacts_for_many(conn: Connection, channel_id: int, people: Sequence[Identity], now: Any) -> list[int]:
    """:func:`contact_for` for many identities at once: one look for the known identities, one
    for contacts to link by email or phone, one insert of the new contacts and one of the new
    identities."""
    firsts = {who.external_id[:400]: who for who in people}
    found: dict[str, int] = {}
    keys = list(firsts)
    for start in range(0, len(keys), 500):
        found.update(
            conn.execute(
                select(identities.c.external_id, identities.c.contact_id).where(
                    identities.c.channel_id == channel_id, identities.c.external_id.in_(keys[start:start + 500])
                )
            ).all()
        )
    missing = [who for key, who in firsts.items() if key not in found]
    if not missing:
        return [found[who.external_id[:400]] for who in people]
    by_email: dict[str, int] = {}
    by_phone: dict[str, int] = {}
    emails = list({who.email.lower() for who in missing if who.email})
    phones = list({who.phone for who in missing if who.phone})
    if emails or phones:
        for row in conn.execute(
            select(contacts.c.id, func.lower(contacts.c.email).label("email"), contacts.c.phone)
            .where(or_(func.lower(contacts.c.email).in_(emails), contacts.c.phone.in_(phones)))
            .order_by(contacts.c.id.desc())  # the oldest contact wins, as in contact_for
        ):
            if row.email:
                by_email[row.email] = row.id
            if row.phone:
                by_phone[row.phone] = row.id
    # People without a contact yet; two identities with one email or phone share a new contact.
    linked: dict[str, int | str] = {}  # identity -> contact id, or the identity whose new contact it shares
    new: dict[str, Identity] = {}
    new_by_email: dict[str, str] = {}
    new_by_phone: dict[str, str] = {}
    for who in missing:
        key = who.external_id[:400]
        email = who.email.lower() if who.email else None
        contact = (by_email.get(email) if email else None) or (by_phone.get(who.phone) if who.phone else None)
        if contact is None:
            twin = (new_by_email.get(email) if email else None) or (new_by_phone.get(who.phone) if who.phone else None)
            if twin is None:
                new[key] = who
                twin = key
                if email:
                    new_by_email[email] = key
                if who.phone:
                    new_by_phone[who.phone] = key
            linked[key] = twin
        else:
            linked[key] = contact
    created: dict[str, int] = {}
    if new:
        ids = insert_many(
            conn,
            contacts,
            [
                {
                    "name": clean(who.name)[:300] if who.name else None,  # type: ignore[index]
                    "email": who.email[:320] if who.email else None,
                    "phone": who.phone[:40] if who.phone else None,
                    "created_at": now,
                }
                for who in new.values()
            ],
            returning=("id",),
            in_order=True,
        )
        created = {key: row.id for key, row in zip(new, ids, strict=True)}
    chosen = {key: created[to] if isinstance(to, str) else to for key, to in linked.items()}
    won = dict(
        insert_many(
            conn,
            identities,
            [{"contact_id": cid, "channel_id": channel_id, "external_id": key, "created_at": now}
             for key, cid in chosen.items()],
            conflict=["channel_id", "external_id"],
            returning=("external_id", "contact_id"),
        )
    )
    lost = [key for key in chosen if key not in won]
    if lost:  # a concurrent first message from the same person won: theirs is the contact
        won.update(
            conn.execute(
                select(identities.c.external_id, identities.c.contact_id).where(
                    identities.c.channel_id == channel_id, identities.c.external_id.in_(lost)
                )
            ).all()
        )
        unused = set(created.values()) - set(won.values())
        if unused:
            conn.execute(contacts.delete().where(contacts.c.id.in_(unused)))
    found.update(won)
    return [found[who.external_id[:400]] for who in people]


def _conversations_for_many(
    conn: Connection, channel_id: int, batch: Sequence[InboundMessage], contact_ids: Sequence[int], now: Any
) -> list[tuple[int, bool]]:
    """:func:`_conversation_for` for a batch, in order. The common case - a message whose thread
    key names the conversation (a chat, a phone number, a shop's thread), without references or
    ticket number - costs one look for the whole batch and one multi-row insert of the new
    conversations; a message that joins an open conversation of its own sender costs one update.
    Everything else (references, ticket numbers, reopening, a second person on a thread) takes
    the one-message path, which sees what this batch wrote before it."""
    c = conversations.c
    simple = [not m.thread_refs and not m.ticket_number and bool(m.thread_key) for m in batch]
    keys = list({m.thread_key[:400] for m, s in zip(batch, simple, strict=True) if s})  # type: ignore[index]
    open_rows: dict[str, Any] = {}  # thread key -> its open conversation, None: only resolved ones
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        for row in conn.execute(
            _columns()
            .add_columns(c.open_key)
            .where(c.channel_id == channel_id,
                   or_(c.open_key.in_(chunk), c.thread_key.in_(chunk) & (c.status == "resolved")))
        ):
            if row.open_key is not None:
                open_rows[row.open_key] = row
            else:  # resolved: the one-message way applies the reopen rule, unless an open one exists
                open_rows.setdefault(row.thread_key, None)
    # The stored messages the batch's replies name: one look for all of them.
    refs = list({ref for m in batch for ref in m.thread_refs[:50]})
    replied: dict[str, tuple[int, int]] = {}  # external id -> (message id, conversation id)
    for start in range(0, len(refs), 500):
        for row in conn.execute(
            select(messages.c.external_id, messages.c.id, messages.c.conversation_id).where(
                messages.c.channel_id == channel_id, messages.c.external_id.in_(refs[start:start + 500])
            )
        ):
            replied[row.external_id] = (row.id, row.conversation_id)
    results: list[tuple[int, bool] | None] = [None] * len(batch)
    pending: dict[str, list[int]] = {}  # thread key -> positions of the messages of a new conversation
    alone: set[str] = set()  # thread keys this batch touched the one-message way
    earlier: dict[str, int] = {}  # external id -> position, of this batch's messages so far
    fresh: list[int] = []  # positions of messages that start a conversation with no thread key (a new mail)

    def create_pending() -> None:
        """Insert the new conversations gathered so far, a statement for each kind."""
        if fresh:
            ids = insert_many(conn, conversations, [
                {"channel_id": channel_id, "contact_id": contact_ids[n], "status": "open", "priority": 0,
                 "language": batch[n].language, "subject": clean(batch[n].subject), "thread_key": None,
                 "open_key": None, "waiting_since": now, "needs_routing": True, "route_attempts": 0,
                 "last_message_at": now, "created_at": now, "updated_at": now}
                for n in fresh
            ], returning=("id",), in_order=True)
            for n, row in zip(fresh, ids, strict=True):
                results[n] = (row.id, True)
            fresh.clear()
        if not pending:
            return
        created = dict(
            insert_many(
                conn,
                conversations,
                [
                    {
                        "channel_id": channel_id,
                        "contact_id": contact_ids[first],
                        "status": "open",
                        "priority": 0,
                        "language": batch[first].language,
                        "subject": clean(batch[first].subject),
                        "thread_key": key,
                        "open_key": key,
                        "waiting_since": now,
                        "needs_routing": True,
                        "route_attempts": 0,
                        "last_message_at": now,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for key, (first, *_) in pending.items()
                ],
                conflict=["channel_id", "open_key"],
                returning=("open_key", "id"),
            )
        )
        for key, positions in pending.items():
            alone.add(key)  # created: later messages of the thread find it the one-message way
            if key in created:
                for n in positions:
                    results[n] = (created[key], n == positions[0])
            else:  # a concurrent first message of this thread won, or this batch opened it meanwhile
                for n in positions:
                    results[n] = _conversation_for(conn, channel_id, contact_ids[n], batch[n], now)
        pending.clear()

    for n, msg in enumerate(batch):
        key = msg.thread_key[:400] if msg.thread_key else ""
        # A reply to a message of this same batch (a backlog holds both): not stored yet, so
        # the look up of its references would miss it. Its conversation is known here.
        parent = max((earlier[ref] for ref in msg.thread_refs[:50] if ref in earlier), default=None)
        stored = max((replied[ref] for ref in msg.thread_refs[:50] if ref in replied), default=None)
        if parent is not None:
            if results[parent] is None:  # the parent's conversation is still to be created
                create_pending()
            results[n] = _conversation_for(conn, channel_id, contact_ids[n], msg, now,
                                           found=results[parent][0])  # type: ignore[index]
            if key:
                alone.add(key)
        elif stored is not None:  # a reply to a stored message: its conversation (or the reopen rule)
            results[n] = _conversation_for(conn, channel_id, contact_ids[n], msg, now, found=stored[1])
            if key:
                alone.add(key)
        elif not key and not msg.ticket_number:  # no thread to look for: a new conversation
            fresh.append(n)
        elif simple[n] and key in pending:
            pending[key].append(n)
        elif simple[n] and key not in alone and key not in open_rows:
            pending[key] = [n]
        elif simple[n] and key not in alone and open_rows[key] is not None \
                and open_rows[key].contact_id == contact_ids[n]:
            results[n] = (open_rows[key].id, _touch(conn, open_rows[key], msg, now))
            alone.add(key)  # touched: the row read above is stale now
        else:  # the references named nothing stored: the ticket number, the thread key
            results[n] = _conversation_for(conn, channel_id, contact_ids[n], msg, now, refs_checked=True)
            if key:
                alone.add(key)
        earlier[msg.external_id[:400]] = n
    create_pending()
    return results  # type: ignore[return-value]


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
        .values(
            conversation_id=conversation_id,
            channel_id=channel_id,
            direction="in",
            sender_contact_id=contact_id,
            text=clean(msg.text) or "",
            html=clean(msg.html),
            quoted=clean(msg.quoted),
            subject=clean(msg.subject),
            automatic=msg.automatic,
            external_id=external_id,
            status="received",
            parse_error=clean(msg.parse_error),
            raw=msg.raw or None,
            sent_at=_naive(msg.sent_at),
            created_at=now,
            private=False,
            attempts=0,
        )
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
            contacts.insert()
            .values(
                name=clean(who.name)[:300] if who.name else None,  # type: ignore[index]
                email=who.email[:320] if who.email else None,
                phone=who.phone[:40] if who.phone else None,
                created_at=utcnow(),
            )
            .returning(contacts.c.id)
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
                  c.thread_key)


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
        values.update(assignee_id=None, resolved_at=None, needs_routing=True, route_attempts=0)
        if row.thread_key:
            taken = conn.execute(
                select(c.id).where(c.channel_id == row.channel_id, c.open_key == row.thread_key, c.id != row.id)
            ).first()
            if taken is None:
                values["open_key"] = row.thread_key
        conn.execute(update(conversations).where(c.id == row.id).values(**values))
        return True
    needs_routing = row.assignee_id is None
    if needs_routing:
        values["needs_routing"] = True
    conn.execute(update(conversations).where(c.id == row.id).values(**values))
    return needs_routing


def _create_conversation(
    conn: Connection, channel_id: int, contact_id: int, msg: InboundMessage, now: Any
) -> tuple[int, bool]:
    c = conversations.c
    key = msg.thread_key[:400] if msg.thread_key else None
    conv_id = conn.execute(
        insert_ignore(conn, conversations, ["channel_id", "open_key"])
        .values(
            channel_id=channel_id,
            contact_id=contact_id,
            status="open",
            priority=0,
            language=msg.language,
            subject=clean(msg.subject),
            thread_key=key,
            open_key=key,
            waiting_since=now,
            needs_routing=True,
            route_attempts=0,
            last_message_at=now,
            created_at=now,
            updated_at=now,
        )
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


def _record_unstorable(engine: Engine, channel_id: int, event: Event, exc: Exception) -> Recorded:
    """Last resort for a message the database refused: keep its raw source and the error in a
    conversation of its own, so nothing is lost and an admin can see it."""
    log.error("channel %s: could not store %r: %s", channel_id, getattr(event, "external_id", "?"), exc)
    if not isinstance(event, InboundMessage):
        return Recorded(None, None)
    bare = InboundMessage(
        external_id=event.external_id[:400],
        sender=Identity(external_id=event.sender.external_id[:400] or "unknown"),
        text="",
        parse_error=f"could not be stored as parsed: {type(exc).__name__}: {exc}"[:2000],
        raw=event.raw,
    )
    try:
        return _record_alone(engine, channel_id, bare)
    except Exception:
        log.exception("channel %s: raw record of %r failed too", channel_id, event.external_id)
        raise


def _naive(value: Any) -> Any:
    if value is None or value.tzinfo is None:
        return value
    from datetime import UTC

    return value.astimezone(UTC).replace(tzinfo=None)
