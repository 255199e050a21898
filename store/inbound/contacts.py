"""Who wrote: the contact behind a channel identity, created on first sight and linked by email or
phone to a contact another channel knows already; and the others on a thread (email Cc).

Two first messages of one person, stored at the same moment, meet in one contact: the unique key
(channel_id, external_id) on identities decides which contact wins, and the loser's is removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, false, func, or_, select

from connectors.base import Identity
from store.inbound.rows import ID_LENGTH, clean_identity, contact_row
from store.models import utcnow
from store.sql import contacts, identities, insert_ignore, insert_many, participants


def contact_for(conn: Connection, channel_id: int, who: Identity) -> int:
    """The contact behind a channel identity, created on first sight. A new identity whose
    email or phone an existing contact already has is linked to that contact."""
    who = clean_identity(who)
    external_id = who.external_id[:ID_LENGTH]
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
                    func.lower(contacts.c.email) == who.email.lower() if who.email else false(),
                    contacts.c.phone == who.phone if who.phone else false(),
                )
            )
            .order_by(contacts.c.id)
            .limit(1)
        ).scalar()
    if contact_id is None:
        contact_id = created = conn.execute(
            contacts.insert().values(**contact_row(who, utcnow())).returning(contacts.c.id)
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


def contacts_for_many(conn: Connection, channel_id: int, people: Sequence[Identity], now: Any) -> list[int]:
    """:func:`contact_for` for many identities at once: one look for the known identities, one
    for contacts to link by email or phone, one insert of the new contacts and one of the new
    identities. The identities must be cleaned already (:func:`store.inbound.rows.clean_event`)."""
    firsts = {who.external_id[:ID_LENGTH]: who for who in people}
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
        return [found[who.external_id[:ID_LENGTH]] for who in people]
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
        key = who.external_id[:ID_LENGTH]
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
            # In key order: concurrent batches wait on each other's new identities in one order.
            [{"contact_id": cid, "channel_id": channel_id, "external_id": key, "created_at": now}
             for key, cid in sorted(chosen.items())],
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
    return [found[who.external_id[:ID_LENGTH]] for who in people]


def add_participants(
    conn: Connection, channel_id: int, conversation_id: int, people: Sequence[Identity]
) -> None:
    """Make the others on a thread (the first 20) participants of its conversation."""
    for who in people[:20]:
        add_participant(conn, conversation_id, contact_for(conn, channel_id, who), who.email)


def add_participant(conn: Connection, conversation_id: int, contact_id: int, email: str | None) -> None:
    """A contact takes part in a conversation (once, however often it is added)."""
    conn.execute(
        insert_ignore(conn, participants, ["conversation_id", "contact_id"]).values(
            conversation_id=conversation_id, contact_id=contact_id, email=email[:320] if email else None
        )
    )
