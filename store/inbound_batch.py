"""A batch of inbound messages in one transaction, with a handful of statements whatever its
size: one look for the messages already stored, then the senders, the conversations and the
messages each written with multi-row statements. What the common case cannot settle (references,
ticket numbers, reopening, a second person on a thread) goes through the one-message rules of
store.inbound_message, which see what the batch wrote before."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, or_, select

from connectors.base import Event, Identity, InboundMessage, StatusUpdate
from store.inbound_message import (
    Recorded,
    _add_participants,
    _attachment_rows,
    _columns,
    _conversation_for,
    _Duplicate,
    _touch,
    apply_status,
    contact_row,
    conversation_row,
    message_row,
    stored_messages,
)
from store.models import utcnow
from store.sql import (
    attachments,
    contacts,
    conversations,
    identities,
    insert_many,
    messages,
)


def _record_batch(conn: Connection, channel_id: int, events: Sequence[Event]) -> list[Recorded]:
    """A batch in one transaction, with a handful of statements for the whole of it: one look
    for the messages already stored, then the senders, the conversations and the messages each
    written with multi-row statements (see :func:`_store_many`). A message a concurrent writer
    stores meanwhile raises _Duplicate, which undoes the whole batch: the caller then stores it
    one by one."""
    known = stored_messages(conn, channel_id, {e.external_id[:400] for e in events if isinstance(e, InboundMessage)})
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
    rows = [message_row(channel_id, conversation_id, contact_id, msg, now)
            for msg, contact_id, (conversation_id, _) in zip(batch, contact_ids, threads, strict=True)]
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
            [contact_row(who, now) for who in new.values()],
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
    replied = stored_messages(conn, channel_id, {ref for m in batch for ref in m.thread_refs[:50]})
    results: list[tuple[int, bool] | None] = [None] * len(batch)
    pending: dict[str, list[int]] = {}  # thread key -> positions of the messages of a new conversation
    alone: set[str] = set()  # thread keys this batch touched the one-message way
    earlier: dict[str, int] = {}  # external id -> position, of this batch's messages so far
    fresh: list[int] = []  # positions of messages that start a conversation with no thread key (a new mail)

    def create_pending() -> None:
        """Insert the new conversations gathered so far, a statement for each kind."""
        if fresh:
            ids = insert_many(conn, conversations,
                              [conversation_row(channel_id, contact_ids[n], batch[n], None, now) for n in fresh],
                              returning=("id",), in_order=True)
            for n, row in zip(fresh, ids, strict=True):
                results[n] = (row.id, True)
            fresh.clear()
        if not pending:
            return
        created = dict(insert_many(
            conn,
            conversations,
            [conversation_row(channel_id, contact_ids[first], batch[first], key, now)
             for key, (first, *_) in pending.items()],
            conflict=["channel_id", "open_key"],
            returning=("open_key", "id"),
        ))
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
