"""Reading conversations for the agents' API: the list, one conversation with its messages, the
message and attachment lookups behind retry and download.

Who may see what is decided by ``router.access.may_see``; :func:`visible_to` is the same rule as
SQL, for the list, and is tested against it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, and_, exists, or_, select, true, update
from sqlalchemy.sql.elements import ColumnElement

from store import reachability
from store.dialect import insert_events
from store.models import MAX_ID, utcnow
from store.sql import agent_teams, attachments, channels, contacts, conversations, messages, tags, teams

c = conversations.c
m = messages.c
f = attachments.c

# Ids are 64-bit signed integers in the database: a larger number names nothing.


def visible_to(agent_id: int, *, admin: bool) -> ColumnElement[bool]:
    """``router.access.may_see`` as a WHERE clause over ``conversations``: theirs, their teams',
    and the shared queue (unassigned, no team); admins see everything."""
    if admin:
        return true()
    in_their_team = exists().where(agent_teams.c.agent_id == agent_id, agent_teams.c.team_id == c.team_id)
    return or_(
        c.assignee_id == agent_id,
        and_(c.team_id.is_not(None), in_their_team),
        and_(c.team_id.is_(None), c.assignee_id.is_(None)),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Filters:
    """The list's filters; None means any."""

    status: str | None = None
    assignee_id: int | None = None
    unassigned: bool = False
    channel_id: int | None = None
    team_id: int | None = None
    view: str = "all"  # mine: assigned to the caller; unassigned: open, nobody's; all: everything visible
    waiting: bool | None = None
    before_id: int | None = None  # the cursor: ids below this one
    tag: str | None = None  # only conversations carrying this tag (store.tags)


def has_tag(tag: str) -> ColumnElement[bool]:
    """SQL: the conversation carries ``tag`` (store.tags)."""
    return exists().where(tags.c.conversation_id == c.id, tags.c.tag == tag)


def summaries() -> Any:
    """Conversations with their contact's name, their channel's kind, and why the customer cannot
    be written to there (null: they can)."""
    return (select(conversations, contacts.c.name.label("contact_name"), channels.c.kind.label("channel_kind"),
                   reachability.reason_column(c.contact_id, c.channel_id))
            .join(contacts, contacts.c.id == c.contact_id).join(channels, channels.c.id == c.channel_id))


def list_visible(engine: Engine, agent_id: int, *, admin: bool, filters: Filters, limit: int,
                 columns: Sequence[Any] = ()) -> tuple[list[Any], bool]:
    """The conversations the agent may see that match ``filters``, newest first, at most
    ``limit``; and whether more follow (the next page starts below the last id). ``columns``:
    more to read with each row (correlated over ``conversations``: computed for the page alone).

    The page's ids are chosen first, from the conversations alone (an index gives them newest
    first), and only those rows are joined to their contact and channel: joining before the limit
    lets the planner join every match of a large view and sort it."""
    query = select(c.id).where(visible_to(agent_id, admin=admin))
    if filters.view == "mine":
        query = query.where(c.assignee_id == agent_id)
    elif filters.view == "unassigned":
        query = query.where(c.status == "open", c.assignee_id.is_(None))
    if filters.team_id is not None:
        query = query.where(c.team_id == filters.team_id)
    if filters.status:
        query = query.where(c.status == filters.status)
    if filters.assignee_id is not None:
        query = query.where(c.assignee_id == filters.assignee_id)
    if filters.unassigned:
        query = query.where(c.assignee_id.is_(None))
    if filters.channel_id is not None:
        query = query.where(c.channel_id == filters.channel_id)
    if filters.waiting is not None:
        query = query.where(c.waiting_since.is_not(None) if filters.waiting else c.waiting_since.is_(None))
    if filters.tag:
        query = query.where(has_tag(filters.tag.strip()))
    if filters.before_id is not None:
        query = query.where(c.id < filters.before_id)
    page = query.order_by(c.id.desc()).limit(limit + 1).subquery()
    with engine.connect() as conn:
        rows = conn.execute(summaries().add_columns(*columns).join(page, page.c.id == c.id)
                            .order_by(c.id.desc())).all()
    return rows[:limit], len(rows) > limit


def visible_ids(engine: Engine, agent_id: int, *, admin: bool) -> set[int]:
    """Every conversation id the agent may see (for checks and tests of the rule)."""
    with engine.connect() as conn:
        return set(conn.execute(select(c.id).where(visible_to(agent_id, admin=admin))).scalars())


def summary(engine: Engine, conversation_id: int) -> Any:
    """One conversation with its contact's name, or None."""
    if not 0 < conversation_id <= MAX_ID:
        return None
    with engine.connect() as conn:
        return conn.execute(summaries().where(c.id == conversation_id)).first()


def summaries_by_id(engine: Engine, conversation_ids: list[int], columns: Sequence[Any] = ()) -> dict[int, Any]:
    """Conversations as the list reads them (with ``columns``, see :func:`list_visible`), by id."""
    if not conversation_ids:
        return {}
    with engine.connect() as conn:
        query = summaries().add_columns(*columns).where(c.id.in_(set(conversation_ids)))
        return {row.id: row for row in conn.execute(query)}


def detail(engine: Engine, conversation_id: int) -> tuple[Any, Any, list[Any], dict[int, list[Any]]] | None:
    """A conversation, its contact, its messages (oldest first) and their attachments (by
    message id, without the data); None when it does not exist."""
    if not 0 < conversation_id <= MAX_ID:
        return None
    with engine.connect() as conn:
        row = conn.execute(summaries().where(c.id == conversation_id)).first()
        if row is None:
            return None
        contact = conn.execute(select(contacts).where(contacts.c.id == row.contact_id)).one()
        msgs = conn.execute(
            select(m.id, m.direction, m.text, m.html, m.quoted, m.subject, m.status, m.status_reason, m.private,
                   m.automatic, m.author_agent_id, m.parse_error, m.created_at, m.sent_at, m.edited_at, m.edits)
            .where(m.conversation_id == conversation_id).order_by(m.id)
        ).all()
        files: dict[int, list[Any]] = {}
        if msgs:
            for file in conn.execute(
                select(f.id, f.message_id, f.filename, f.content_type, f.size, f.inline, f.fetch_state,
                       f.fetch_error)
                .where(f.message_id.in_([x.id for x in msgs])).order_by(f.id)
            ):
                files.setdefault(file.message_id, []).append(file)
    return row, contact, list(msgs), files


def message(engine: Engine, message_id: int) -> Any:
    """A message's conversation, direction and status, or None."""
    if not 0 < message_id <= MAX_ID:
        return None
    with engine.connect() as conn:
        return conn.execute(
            select(m.id, m.conversation_id, m.direction, m.status, c.assignee_id, c.team_id)
            .join(conversations, c.id == m.conversation_id).where(m.id == message_id)
        ).first()


def retry(engine: Engine, message_id: int) -> bool:
    """Put a failed reply back to ``pending`` with fresh attempts; False when it is not a failed
    reply (any more)."""
    with engine.begin() as conn:
        moved = conn.execute(
            update(messages).where(m.id == message_id, m.direction == "out", m.status == "failed")
            .values(status="pending", attempts=0, next_attempt_at=None).returning(m.conversation_id)
        ).first()
        if moved is not None:  # its stream event (store.events; built here: that module reads this one)
            insert_events(conn, [{"created_at": utcnow(), "type": "message.status", "agent_id": None,
                                  "conversation_id": moved.conversation_id,
                                  "data": {"message_id": message_id, "status": "pending"}}])
        return moved is not None


def attachment(engine: Engine, attachment_id: int) -> Any:
    """An attachment with its data and its conversation's assignee and team, or None."""
    if not 0 < attachment_id <= MAX_ID:
        return None
    with engine.connect() as conn:
        return conn.execute(
            select(attachments, m.conversation_id, c.assignee_id, c.team_id)
            .join(messages, m.id == f.message_id).join(conversations, c.id == m.conversation_id)
            .where(f.id == attachment_id)
        ).first()


def team_exists(engine: Engine, team_id: int) -> bool:
    if not 0 < team_id <= MAX_ID:
        return False
    with engine.connect() as conn:
        return conn.execute(select(teams.c.id).where(teams.c.id == team_id)).first() is not None


class NoDirectThread(ValueError):
    """The conversation cannot move to direct messages (the channel has none, the customer has no
    identity on it, or their direct conversation is open elsewhere). The API answers 409."""


def move_to_direct(engine: Engine, conversation_id: int) -> bool:
    """Make a public conversation (an X mention thread) continue in direct messages with its
    customer: it takes the thread key of their direct conversation (the channel's connector says
    which, :meth:`Connector.direct_thread`), so the next reply goes there and the customer's direct
    messages join it. False when it is there already; LookupError for no such conversation."""
    from store.channels import connector_for, load_channel
    from store.events import append, event
    from store.sql import identities

    with engine.connect() as conn:  # the channel's connector first: not inside the write transaction
        row = conn.execute(select(c.channel_id, c.contact_id).where(c.id == conversation_id)).first()
        if row is None:
            raise LookupError(f"conversation {conversation_id} does not exist")
        handle = conn.execute(
            select(identities.c.external_id)
            .where(identities.c.contact_id == row.contact_id, identities.c.channel_id == row.channel_id)
            .order_by(identities.c.id).limit(1)
        ).scalar()
    key = connector_for(load_channel(engine, row.channel_id)).direct_thread(handle) if handle else None
    if key is None:
        raise NoDirectThread("this conversation's channel has no direct messages with this customer")
    with engine.begin() as conn:
        row = conn.execute(select(c.id, c.channel_id, c.thread_key, c.status)
                           .where(c.id == conversation_id).with_for_update()).one()
        if row.thread_key == key:
            return False
        taken = conn.execute(select(c.id).where(c.channel_id == row.channel_id, c.open_key == key,
                                                c.id != conversation_id)).scalar()
        if taken is not None:
            raise NoDirectThread(f"the customer's direct messages are open in conversation {taken}: "
                                 "reply there, or resolve it first")
        now = utcnow()
        conn.execute(update(conversations).where(c.id == conversation_id).values(
            thread_key=key, open_key=key if row.status != "resolved" else None, updated_at=now))
        append(conn, [event("conversation.updated", conversation_id, at=now, thread="direct")])
        return True
