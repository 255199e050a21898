"""Delivery receipts for our outbound messages: a status only ever moves forward.

Providers send receipts out of order (Twilio may say "delivered" after "read"); a receipt that
would move a status back, or names a message we do not know, changes nothing. A receipt may also
name our own message id (``StatusUpdate.message_id``): it then finds a reply whose send's outcome
is not recorded yet (Twilio's callback overtaking our write of its sid), and records the sid.
"""

from __future__ import annotations

from sqlalchemy import Connection, or_, update

from connectors.base import StatusUpdate
from store.inbound.rows import ID_LENGTH, Recorded, clean_status
from store.sql import messages

# Delivery statuses only move forward; "failed" may follow anything before "delivered".
RANK = {"pending": 0, "sending": 1, "sent": 2, "failed": 3, "delivered": 3, "read": 4}


def apply_status(conn: Connection, channel_id: int, update_: StatusUpdate) -> Recorded:
    """Move an outbound message's delivery status forward (never back). Returns the message
    moved, or ``duplicate=True`` when nothing moved (an old or repeated receipt, or an unknown
    message); an unknown status name gives ``Recorded(None, None)``."""
    update_ = clean_status(update_)
    rank = RANK.get(update_.status)
    if rank is None:
        return Recorded(None, None)
    earlier = [status for status, r in RANK.items() if r < rank]
    external_id = update_.external_id[:ID_LENGTH]
    named = messages.c.external_id == external_id
    if update_.message_id is not None:  # the send's record may not have come yet: our id says which
        named = or_(named, (messages.c.id == update_.message_id)
                    & (messages.c.external_id.is_(None) | (messages.c.external_id == external_id)))
    row = conn.execute(
        update(messages)
        .where(
            messages.c.channel_id == channel_id,
            named,
            messages.c.direction == "out",
            messages.c.status.in_(earlier),
        )
        # A receipt without a reason keeps what the send noted (e.g. its SMS segments).
        .values(status=update_.status, external_id=external_id,
                status_reason=update_.reason if update_.reason is not None else messages.c.status_reason)
        .returning(messages.c.id, messages.c.conversation_id)
    ).first()
    if row is None:
        return Recorded(None, None, duplicate=True)
    return Recorded(row.id, row.conversation_id)
