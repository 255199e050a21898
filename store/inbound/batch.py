"""A batch of inbound messages in one transaction, with a handful of statements whatever its
size: one look for the messages already stored, then the senders, the conversations and the
messages each written with multi-row statements. What the common case cannot settle (references,
ticket numbers, reopening, a second person on a thread) goes through the one-message rules of
store.inbound.threads, which see what the batch wrote before. A message stored alone is a batch
of one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, or_, select

from connectors.base import Event, InboundMessage, MessageEdit, ReachabilityUpdate, StatusUpdate
from store import reachability, sla
from store.events import append as append_events
from store.events import event as stream_event
from store.inbound.contacts import add_participants, contacts_for_many
from store.inbound.edits import apply_edit
from store.inbound.limits import interval
from store.inbound.receipts import apply_status
from store.inbound.rows import (
    ID_LENGTH,
    Duplicate,
    Recorded,
    attachment_rows,
    clean_event,
    conversation_row,
    message_row,
    remote_attachment_rows,
    stored_messages,
)
from store.inbound.threads import conversation_columns, conversation_for, touch
from store.models import utcnow
from store.sql import attachments, conversations, insert_many, messages


def record_batch(conn: Connection, channel_id: int, events: Sequence[Event], *,
                 deadline: sla.Deadline | None = None) -> list[Recorded]:
    """Store ``events`` on ``conn``, in its transaction, with a handful of statements for the
    whole batch (see :func:`store_many`); NUL is cleaned from them first. A message a concurrent
    writer stores meanwhile raises :class:`Duplicate`, which must undo the whole transaction:
    the caller then stores the events one by one. The batch's stream events (store.events) are
    written last, in one statement. ``deadline``: the SLA rule (``router.sla.deadline``); with
    it, each conversation a customer now waits on gets its clock here (store.sla)."""
    events = [clean_event(e) for e in events]
    known = stored_messages(conn, channel_id,
                            {e.external_id[:ID_LENGTH] for e in events if isinstance(e, InboundMessage)})
    results: list[Recorded | None] = [None] * len(events)
    fresh: dict[str, int] = {}  # external id -> position of its first copy in this batch
    told: list[dict[str, Any]] = []  # the stream's events of this batch
    edits: list[int] = []
    for n, event in enumerate(events):
        if isinstance(event, StatusUpdate):
            results[n] = moved = apply_status(conn, channel_id, event)
            if moved.message_id is not None and not moved.duplicate:
                told.append(_status_event(moved, event.status))
        elif isinstance(event, MessageEdit):
            edits.append(n)  # after the new messages: an edit may follow its message in one batch
        elif isinstance(event, ReachabilityUpdate):
            results[n] = Recorded(None, None)  # applied after the messages: their senders exist then
        elif event.external_id[:ID_LENGTH] in known:
            results[n] = Recorded(*known[event.external_id[:ID_LENGTH]], duplicate=True)
        elif event.external_id[:ID_LENGTH] not in fresh:
            fresh[event.external_id[:ID_LENGTH]] = n
    if fresh:
        stored = store_many(conn, channel_id, [events[n] for n in fresh.values()], told)  # type: ignore[misc]
        for n, recorded in zip(fresh.values(), stored, strict=True):
            results[n] = recorded
    for n in edits:
        results[n] = edited = apply_edit(conn, channel_id, events[n])  # type: ignore[arg-type]
        if edited.message_id is not None and not edited.duplicate:
            told.append(stream_event("message.updated", edited.conversation_id, message_id=edited.message_id,
                                     edited=True))
    for n, event in enumerate(events):
        if results[n] is None:  # a second copy of a message earlier in this batch
            first = results[fresh[event.external_id[:ID_LENGTH]]]
            results[n] = Recorded(first.message_id, first.conversation_id, duplicate=True)  # type: ignore[union-attr]
    told.extend(reachability.apply(conn, channel_id, event) for event in events
                if isinstance(event, ReachabilityUpdate))
    if deadline is not None and fresh:
        sla.start_clocks(conn, (results[n].conversation_id for n in fresh.values()  # type: ignore[union-attr,misc]
                                if results[n].conversation_id is not None), deadline)  # type: ignore[union-attr]
    append_events(conn, told)
    return results  # type: ignore[return-value]


def _status_event(moved: Recorded, status: str) -> dict[str, Any]:
    return stream_event("message.status", moved.conversation_id, message_id=moved.message_id, status=status)


def store_many(conn: Connection, channel_id: int, batch: Sequence[InboundMessage],
               told: list[dict[str, Any]] | None = None) -> list[Recorded]:
    """New messages (none of them stored yet, no two alike) in few statements whatever their number.
    ``told`` gets their stream events: each conversation started (``conversation.created``) or
    written to (``conversation.updated``, open again), then each message (``message.created``)."""
    now = utcnow()
    contact_ids = contacts_for_many(conn, channel_id, [m.sender for m in batch], now)
    created: set[int] = set()
    threads = conversations_for_many(conn, channel_id, batch, contact_ids, now, created=created)
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
        raise Duplicate(row.id, row.conversation_id)
    insert_many(conn, attachments, [row for msg in batch
                                    for row in attachment_rows(stored[msg.external_id[:ID_LENGTH]], msg)])
    fetches: dict[int, list[int]] = {}  # message id -> its attachments to fetch
    for row in insert_many(conn, attachments,
                           [row for msg in batch if msg.remote_attachments
                            for row in remote_attachment_rows(stored[msg.external_id[:ID_LENGTH]], msg, now)],
                           returning=("message_id", "id")):
        fetches.setdefault(row.message_id, []).append(row.id)
    for msg, (conversation_id, _) in zip(batch, threads, strict=True):
        if msg.participants:
            add_participants(conn, channel_id, conversation_id, msg.participants)
    if told is not None:
        told.extend(
            stream_event("conversation.created", conv, at=now) if conv in created
            else stream_event("conversation.updated", conv, at=now, status="open")
            for conv in dict.fromkeys(conversation_id for conversation_id, _ in threads))
        told.extend(stream_event("message.created", conversation_id, at=now, direction="in",
                                 message_id=stored[msg.external_id[:ID_LENGTH]])
                    for msg, (conversation_id, _) in zip(batch, threads, strict=True))
    return [
        Recorded(stored[msg.external_id[:ID_LENGTH]], conversation_id, needs_routing=needs_routing,
                 fetches=tuple(sorted(fetches.get(stored[msg.external_id[:ID_LENGTH]], ()))))
        for msg, (conversation_id, needs_routing) in zip(batch, threads, strict=True)
    ]


def conversations_for_many(
    conn: Connection, channel_id: int, batch: Sequence[InboundMessage], contact_ids: Sequence[int], now: Any, *,
    created: set[int] | None = None,
) -> list[tuple[int, bool]]:
    """:func:`conversation_for` for a batch, in order. The common case - a message whose thread
    key names the conversation (a chat, a phone number, a shop's thread), without references or
    ticket number - costs one look for the whole batch and one multi-row insert of the new
    conversations; a message that joins an open conversation of its own sender costs one update.
    Everything else (references, ticket numbers, reopening, a second person on a thread) takes
    the one-message path, which sees what this batch wrote before it. ``created`` gets the ids of
    the conversations started."""
    created = set() if created is None else created
    c = conversations.c
    # With a ticket limit, a message that would start a conversation goes the one-message way,
    # which applies it (store.inbound.limits) and sees what this batch started before it.
    limit = interval(conn, channel_id)
    simple = [not m.thread_refs and not m.ticket_number and bool(m.thread_key) for m in batch]
    keys = list({m.thread_key[:ID_LENGTH] for m, s in zip(batch, simple, strict=True) if s})  # type: ignore[index]
    open_rows: dict[str, Any] = {}  # thread key -> its open conversation, None: only resolved ones
    # Locked as they are read, in id order: the batch writes to them below in its messages' order,
    # and two batches writing to two conversations in opposite orders would deadlock. The lock is
    # the one those writes take (FOR NO KEY UPDATE): a reply or an assignment stored meanwhile,
    # which only needs the conversation to exist, does not wait for it.
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        for row in conn.execute(
            conversation_columns()
            .add_columns(c.open_key)
            .where(c.channel_id == channel_id,
                   or_(c.open_key.in_(chunk), c.thread_key.in_(chunk) & (c.status == "resolved")))
            .order_by(c.id).with_for_update(key_share=True)
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
                created.add(row.id)
            fresh.clear()
        if not pending:
            return
        opened = dict(insert_many(
            conn,
            conversations,
            [conversation_row(channel_id, contact_ids[first], batch[first], key, now)
             for key, (first, *_) in pending.items()],
            conflict=["channel_id", "open_key"],
            returning=("open_key", "id"),
        ))
        created.update(opened.values())
        for key, positions in pending.items():
            alone.add(key)  # created: later messages of the thread find it the one-message way
            if key in opened:
                for n in positions:
                    results[n] = (opened[key], n == positions[0])
            else:  # a concurrent first message of this thread won, or this batch opened it meanwhile
                for n in positions:
                    results[n] = conversation_for(conn, channel_id, contact_ids[n], batch[n], now, created=created,
                                                  limit=limit)
        pending.clear()

    for n, msg in enumerate(batch):
        key = msg.thread_key[:ID_LENGTH] if msg.thread_key else ""
        # A reply to a message of this same batch (a backlog holds both): not stored yet, so
        # the look up of its references would miss it. Its conversation is known here.
        parent = max((earlier[ref] for ref in msg.thread_refs[:50] if ref in earlier), default=None)
        stored = max((replied[ref] for ref in msg.thread_refs[:50] if ref in replied), default=None)
        if parent is not None:
            if results[parent] is None:  # the parent's conversation is still to be created
                create_pending()
            results[n] = conversation_for(conn, channel_id, contact_ids[n], msg, now,
                                           found=results[parent][0], created=created, limit=limit)  # type: ignore[index]
            if key:
                alone.add(key)
        elif stored is not None:  # a reply to a stored message: its conversation (or the reopen rule)
            results[n] = conversation_for(conn, channel_id, contact_ids[n], msg, now, found=stored[1], created=created,
                                           limit=limit)
            if key:
                alone.add(key)
        elif not key and not msg.ticket_number and not limit:  # no thread to look for: a new conversation
            fresh.append(n)
        elif simple[n] and key in pending:
            pending[key].append(n)
        elif simple[n] and key not in alone and key not in open_rows and not limit:
            pending[key] = [n]
        elif simple[n] and key not in alone and open_rows.get(key) is not None \
                and open_rows[key].contact_id == contact_ids[n]:
            results[n] = (open_rows[key].id, touch(conn, open_rows[key], msg, now))
            alone.add(key)  # touched: the row read above is stale now
        else:  # the references named nothing stored: the ticket number, the thread key
            results[n] = conversation_for(conn, channel_id, contact_ids[n], msg, now, refs_checked=True,
                                           created=created, limit=limit)
            if key:
                alone.add(key)
        earlier[msg.external_id[:ID_LENGTH]] = n
    create_pending()
    return results  # type: ignore[return-value]
