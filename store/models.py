"""The tables. Times are naive UTC everywhere (SQLite keeps no zone; PostgreSQL gets the same)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Integer, LargeBinary, Text, UniqueConstraint, func
from sqlalchemy import text as sql_text
from sqlmodel import Field, SQLModel

# Ids are INTEGER columns: 32-bit on PostgreSQL. A larger number names nothing, and is refused
# before it reaches the database (which would fail on it).
MAX_ID = 2**31 - 1


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _ts(**kw: Any) -> Any:
    return Field(sa_type=DateTime(), **kw)


class Channel(SQLModel, table=True):
    __tablename__ = "channels"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20)
    name: str = Field(max_length=200)
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    secrets: str | None = Field(default=None, sa_column=Column(Text))  # Fernet token of a JSON dict
    enabled: bool = True
    status: str = Field(default="ok", max_length=20)  # ok | error
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    error_count: int = 0
    cursor: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    next_poll_at: datetime | None = _ts(default=None)
    poll_owner: str | None = Field(default=None, max_length=100)
    poll_lock_until: datetime | None = _ts(default=None)
    created_at: datetime = _ts(default_factory=utcnow)
    updated_at: datetime = _ts(default_factory=utcnow)


class Contact(SQLModel, table=True):
    __tablename__ = "contacts"

    id: int | None = Field(default=None, primary_key=True)
    name: str | None = Field(default=None, max_length=300)
    email: str | None = Field(default=None, max_length=320, index=True)
    phone: str | None = Field(default=None, max_length=40, index=True)
    # The shop's own facts about the customer ({"tier": "b2b", ...}), read by routing rules.
    attributes: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    created_at: datetime = _ts(default_factory=utcnow)


class ContactIdentity(SQLModel, table=True):
    """A contact as one channel knows them; several identities can point at one contact."""

    __tablename__ = "contact_identities"
    __table_args__ = (UniqueConstraint("channel_id", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contacts.id", index=True)
    channel_id: int = Field(foreign_key="channels.id")
    external_id: str = Field(max_length=400)
    created_at: datetime = _ts(default_factory=utcnow)
    # Set while the customer cannot be written to here (opted out, blocked us): replies are refused.
    unreachable_reason: str | None = Field(default=None, sa_column=Column(Text))
    unreachable_since: datetime | None = _ts(default=None)


class Team(SQLModel, table=True):
    __tablename__ = "teams"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    # Routing settings (router/): the policy's name (None: least_loaded), the members' default
    # capacity per group of channel kinds ({"email": 8, "chat": 3, "messaging": 5}), how long a
    # conversation waits for an agent with its skills before any member may take it, how long a
    # returning customer goes back to their last agent (sticky), and whether an agent set away
    # gives their open conversations back to the queue.
    policy: str | None = Field(default=None, max_length=20)
    capacities: dict[str, int] | None = Field(default=None, sa_column=Column(JSON))
    skill_wait_seconds: int | None = None
    sticky_seconds: int | None = None
    return_on_away: bool = Field(default=False, sa_column_kwargs={"server_default": sql_text("false")})
    # Business hours (router.hours JSON form); None: the shop's default hours.
    hours: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    # Seconds of business time an assignee may leave a waiting customer unanswered before the
    # conversation goes back to the queue; None: never (off by default).
    reassign_after: float | None = None


class Agent(SQLModel, table=True):
    __tablename__ = "agents"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    email: str = Field(max_length=320, unique=True)
    role: str = Field(default="agent", max_length=10)  # agent | admin
    presence: str = Field(default="offline", max_length=10)  # online | away | offline
    capacity: int = 5
    # Capacity per group of channel kinds, over the team default ({"email": 8, "chat": 3}).
    capacities: dict[str, int] | None = Field(default=None, sa_column=Column(JSON))
    skills: list[str] | None = Field(default=None, sa_column=Column(JSON))  # free-form: "returns", "B2B"
    # Open conversations assigned now; changed only together with the assignment it counts.
    active_count: int = 0
    last_assigned_at: datetime | None = _ts(default=None)
    active: bool = True  # deactivated agents keep their history but cannot log in
    created_at: datetime = _ts(default_factory=utcnow)
    password_hash: str | None = Field(default=None, max_length=200)  # argon2id; None: cannot sign in
    locale: str = Field(default="en", max_length=10, sa_column_kwargs={"server_default": "en"})  # the inbox's language
    # The inbox's last heartbeat; None for agents whose presence only the API sets (integrations).
    last_seen_at: datetime | None = _ts(default=None)


class AgentTeam(SQLModel, table=True):
    __tablename__ = "agent_teams"

    agent_id: int = Field(foreign_key="agents.id", primary_key=True)
    team_id: int = Field(foreign_key="teams.id", primary_key=True)


class AgentLanguage(SQLModel, table=True):
    __tablename__ = "agent_languages"

    agent_id: int = Field(foreign_key="agents.id", primary_key=True)
    language: str = Field(max_length=20, primary_key=True)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    agent_id: int = Field(foreign_key="agents.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = _ts(default_factory=utcnow)


class AgentSession(SQLModel, table=True):
    """A signed-in browser. The cookie carries the session id; only its SHA-256 digest is kept.
    ``csrf_token`` is the proof a cookie-authenticated write must send back (``X-CSRF-Token``)."""

    __tablename__ = "sessions"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    agent_id: int = Field(foreign_key="agents.id", index=True)
    csrf_token: str = Field(max_length=64)
    created_at: datetime = _ts(default_factory=utcnow)
    last_seen_at: datetime = _ts(default_factory=utcnow)
    expires_at: datetime = _ts()


class Invite(SQLModel, table=True):
    """A one-time link with which an agent sets their password (an invitation or a reset)."""

    __tablename__ = "invites"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    agent_id: int = Field(foreign_key="agents.id", index=True)
    created_by: int | None = Field(default=None, foreign_key="agents.id")
    created_at: datetime = _ts(default_factory=utcnow)
    expires_at: datetime = _ts()
    used_at: datetime | None = _ts(default=None)


class SignInFailure(SQLModel, table=True):
    """A refused sign-in, counted per email and per client address for the rate limit; rows
    older than the window are deleted as new ones come."""

    __tablename__ = "sign_in_failures"
    __table_args__ = (
        Index("ix_sign_in_failures_email", "email", "created_at"),
        Index("ix_sign_in_failures_ip", "ip", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320)
    ip: str = Field(max_length=64)
    created_at: datetime = _ts(default_factory=utcnow)


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"
    __table_args__ = (
        # One open conversation per thread key: concurrent first messages of a thread meet here.
        UniqueConstraint("channel_id", "open_key"),  # also serves lookups by channel
        Index("ix_conversations_thread", "channel_id", "thread_key"),
        # The inbox: its counts (by status), and its views newest first (an agent's, a team's),
        # read in id order from the index, so a page reads only its own rows.
        Index("ix_conversations_status", "status", "assignee_id"),
        Index("ix_conversations_assignee", "assignee_id", "id"),
        Index("ix_conversations_team", "team_id", "id"),
        # Partial (see _partial_indexes): only the rows the queue and the sweep look for, so
        # assigning a conversation takes it out of both instead of writing new entries.
    )

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channels.id")
    contact_id: int = Field(foreign_key="contacts.id", index=True)
    status: str = Field(default="open", max_length=10)  # open | pending | snoozed | resolved
    assignee_id: int | None = Field(default=None, foreign_key="agents.id")  # ix_conversations_assignee
    last_assignee_id: int | None = Field(default=None, foreign_key="agents.id")
    team_id: int | None = Field(default=None, foreign_key="teams.id")
    priority: int = 0  # higher first
    language: str | None = Field(default=None, max_length=20)
    skills: list[str] | None = Field(default=None, sa_column=Column(JSON))  # required of its agent (rules set them)
    skills_widened_at: datetime | None = _ts(default=None)  # waited long enough: any agent of the team
    # Who set the language: "detected" (router.language, may change again), "manual" or "rule" (kept).
    language_source: str | None = Field(default=None, max_length=10)
    # The last inbound message the automations (rules, language) have seen: each runs once per message.
    automated_through: int | None = None
    subject: str | None = Field(default=None, sa_column=Column(Text))
    thread_key: str | None = Field(default=None, max_length=400)
    open_key: str | None = Field(default=None, max_length=400)  # thread_key while not resolved
    waiting_since: datetime | None = _ts(default=None)  # customer waiting for an answer since
    needs_routing: bool = False
    route_attempts: int = 0
    route_error: str | None = Field(default=None, sa_column=Column(Text))
    first_response_at: datetime | None = _ts(default=None)
    # SLA due times of the customer's current wait (store.sla): the first response, or the next one.
    first_response_due: datetime | None = _ts(default=None)
    next_response_due: datetime | None = _ts(default=None)
    reassigned_wait: datetime | None = _ts(default=None)  # the waiting_since a reassignment was for
    acked_at: datetime | None = _ts(default=None)  # the last automatic acknowledgement
    resolved_at: datetime | None = _ts(default=None)
    snoozed_until: datetime | None = _ts(default=None)
    last_message_at: datetime | None = _ts(default=None)
    created_at: datetime = _ts(default_factory=utcnow)
    updated_at: datetime = _ts(default_factory=utcnow)

    @property
    def number(self) -> int:
        """The ticket number customers see (``[#1234]``)."""
        return self.id or 0


class ConversationParticipant(SQLModel, table=True):
    """Others on a conversation besides its contact (email Cc) who may write into it."""

    __tablename__ = "conversation_participants"

    conversation_id: int = Field(foreign_key="conversations.id", primary_key=True)
    contact_id: int = Field(foreign_key="contacts.id", primary_key=True)
    email: str | None = Field(default=None, max_length=320)


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel_id", "external_id"),
        # A conversation's messages in order; its newest customer message read from the index's end
        # alone on PostgreSQL (direction and private carried in it: the inbox's unread count).
        Index("ix_messages_conversation", "conversation_id", "id", postgresql_include=["direction", "private"]),
        # Partial (see _partial_indexes): replies still to send; received messages stay out.
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversations.id")  # ix_messages_conversation
    channel_id: int = Field(foreign_key="channels.id")
    direction: str = Field(max_length=3)  # in | out
    author_agent_id: int | None = Field(default=None, foreign_key="agents.id")
    sender_contact_id: int | None = Field(default=None, foreign_key="contacts.id")
    text: str = Field(default="", sa_column=Column(Text, nullable=False))
    html: str | None = Field(default=None, sa_column=Column(Text))
    quoted: str | None = Field(default=None, sa_column=Column(Text))
    subject: str | None = Field(default=None, sa_column=Column(Text))
    private: bool = False
    automatic: bool = False
    external_id: str | None = Field(default=None, max_length=400)
    # in: received. out: pending -> sending -> sent -> delivered -> read, or failed.
    status: str = Field(default="received", max_length=10)
    status_reason: str | None = Field(default=None, sa_column=Column(Text))
    attempts: int = 0
    next_attempt_at: datetime | None = _ts(default=None)
    lease_until: datetime | None = _ts(default=None)
    parse_error: str | None = Field(default=None, sa_column=Column(Text))
    raw: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    # out: an approved template sent instead of free text, {"name", "variables"} (WhatsApp)
    template: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    sent_at: datetime | None = _ts(default=None)
    created_at: datetime = _ts(default_factory=utcnow)
    # The customer changed the message (Telegram's edits): when, and the texts it had before,
    # oldest first, as [{"text": ..., "until": <ISO time>}].
    edited_at: datetime | None = _ts(default=None)
    edits: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))


class Attachment(SQLModel, table=True):
    __tablename__ = "attachments"

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="messages.id", index=True)
    filename: str = Field(max_length=500)
    content_type: str = Field(max_length=200)
    size: int
    content_id: str | None = Field(default=None, max_length=400)
    inline: bool = False
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # b"" until fetched
    # A file the provider holds (connectors.base.RemoteAttachment): ``ref`` names it for the
    # connector's fetch; fetch_state done | pending | failed (with fetch_error), claimed like a reply.
    ref: str | None = Field(default=None, sa_column=Column(Text))
    fetch_state: str = Field(default="done", max_length=10)
    fetch_error: str | None = Field(default=None, sa_column=Column(Text))
    fetch_attempts: int = 0
    next_fetch_at: datetime | None = _ts(default=None)
    lease_until: datetime | None = _ts(default=None)
    # A pending fetch the sweep rang (its job presumed lost): not rung again before this.
    look_again_at: datetime | None = _ts(default=None)


class ConversationRead(SQLModel, table=True):
    """How far an agent has read a conversation: its messages after this one are unread to them."""

    __tablename__ = "conversation_reads"

    agent_id: int = Field(foreign_key="agents.id", primary_key=True)
    conversation_id: int = Field(foreign_key="conversations.id", primary_key=True)
    last_read_message_id: int


class CannedResponse(SQLModel, table=True):
    """A reply an agent inserts by its shortcut; ``text`` may hold placeholders (store.canned)."""

    __tablename__ = "canned_responses"

    id: int | None = Field(default=None, primary_key=True)
    shortcut: str = Field(max_length=50, unique=True)
    title: str = Field(max_length=200)
    text: str = Field(sa_column=Column(Text, nullable=False))
    created_by: int | None = Field(default=None, foreign_key="agents.id")
    created_at: datetime = _ts(default_factory=utcnow)
    updated_at: datetime = _ts(default_factory=utcnow)


class Assignment(SQLModel, table=True):
    """Every change of a conversation's assignee, for audit and reports."""

    __tablename__ = "assignments"

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversations.id", index=True)
    agent_id: int | None = Field(default=None, foreign_key="agents.id")
    by_agent_id: int | None = Field(default=None, foreign_key="agents.id")  # None: the router
    reason: str = Field(max_length=40)  # routed | pulled | manual | unassigned | resolved
    created_at: datetime = _ts(default_factory=utcnow)


class SlaClock(SQLModel, table=True):
    """One response target of one wait (store.sla): started when the customer starts waiting,
    answered by the agent's reply, or ended without one (``ended_at``: resolved, say). Due and
    near-breach times are in business time, computed when it starts; ``near_noted_at`` /
    ``breached_at``: when the sweep wrote that event (once each)."""

    __tablename__ = "sla_clocks"
    # Partial too (see _partial_indexes): the clocks the sweep still has to note.
    __table_args__ = (Index("ix_sla_clocks_started", "started_at"),)

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversations.id", index=True)
    kind: str = Field(max_length=10)  # first | next
    channel_kind: str = Field(max_length=20)
    priority: int = 0
    started_at: datetime = _ts()
    near_at: datetime | None = _ts(default=None)  # None: never (hours that never open)
    due_at: datetime | None = _ts(default=None)
    answered_at: datetime | None = _ts(default=None)
    ended_at: datetime | None = _ts(default=None)  # the wait ended unanswered (found by the sweep)
    near_noted_at: datetime | None = _ts(default=None)
    breached_at: datetime | None = _ts(default=None)


class ShopConfig(SQLModel, table=True):
    """Shop-wide settings an admin changes through the API: ``hours`` (the default business
    hours), ``sla`` (response targets)."""

    __tablename__ = "shop_config"

    key: str = Field(max_length=40, primary_key=True)
    value: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
class ConversationTag(SQLModel, table=True):
    """A tag on a conversation ("complaint", "refund"), by an agent or a rule."""

    __tablename__ = "conversation_tags"
    __table_args__ = (Index("ix_conversation_tags_tag", "tag", "conversation_id"),)

    conversation_id: int = Field(foreign_key="conversations.id", primary_key=True)
    tag: str = Field(max_length=50, primary_key=True)
    created_at: datetime = _ts(default_factory=utcnow)


class RoutingRule(SQLModel, table=True):
    """An admin's routing rule: when all ``conditions`` hold, apply ``actions`` (router.rules).
    Rules run in ``position`` order (then id)."""

    __tablename__ = "routing_rules"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    position: int = 0
    enabled: bool = True
    conditions: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    actions: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _ts(default_factory=utcnow)
    updated_at: datetime = _ts(default_factory=utcnow)


class Event(SQLModel, table=True):
    """A change an agent may see, written in the transaction of the change (store.events). ``id``
    is the stream's order: 64-bit, never reused (AUTOINCREMENT on SQLite, so pruning every row
    cannot bring an old number back)."""

    __tablename__ = "events"
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer, "sqlite"),
                                                            primary_key=True))
    created_at: datetime = _ts(default_factory=utcnow)
    type: str = Field(max_length=40)  # message.created, message.status, conversation.updated, ...
    conversation_id: int | None = None  # None: not about a conversation (presence)
    agent_id: int | None = None  # the agent it is about (presence, typing; who lost a conversation)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class WebchatVisitor(SQLModel, table=True):
    """A web chat visitor (store.visitors): when their widget last had its stream open (a web
    process touches its open streams every few seconds), and the email they left."""

    __tablename__ = "webchat_visitors"
    __table_args__ = (UniqueConstraint("channel_id", "visitor"),)

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channels.id")
    visitor: str = Field(max_length=400)  # the contact identity's external id on the channel
    email: str | None = Field(default=None, max_length=320)
    last_seen_at: datetime | None = _ts(default=None)
    created_at: datetime = _ts(default_factory=utcnow)


def _partial_indexes() -> None:
    """Indexes over the few rows that work is still due on. Conversations: the queue (open,
    unassigned) and those needing routing. Messages: replies pending or being sent. SLA clocks:
    those still to note as near a breach, or breached. A row leaves
    them when its work is done, so the busy writes (a new inbound message, an assignment) update
    fewer index entries, and the sweep reads small indexes."""
    conv, msg = Conversation.__table__.c, Message.__table__.c  # type: ignore[attr-defined]
    clock = SlaClock.__table__.c  # type: ignore[attr-defined]
    for name, columns, where in (
        ("ix_conversations_queue", (conv.priority, conv.waiting_since),
         (conv.status == "open") & conv.assignee_id.is_(None)),
        ("ix_conversations_routing", (conv.updated_at,), conv.needs_routing.is_(True)),
        ("ix_messages_delivery", (msg.next_attempt_at,),
         (msg.direction == "out") & msg.status.in_(("pending", "sending"))),
        ("ix_attachments_fetch", (Attachment.__table__.c.next_fetch_at,),  # type: ignore[attr-defined]
         Attachment.__table__.c.fetch_state == "pending"),  # type: ignore[attr-defined]
        ("ix_sla_clocks_near", (clock.near_at,), clock.answered_at.is_(None) & clock.ended_at.is_(None)
         & clock.near_noted_at.is_(None)),
        ("ix_sla_clocks_due", (clock.due_at,), clock.answered_at.is_(None) & clock.ended_at.is_(None)
         & clock.breached_at.is_(None)),
    ):
        Index(name, *columns, postgresql_where=where, sqlite_where=where)


_partial_indexes()


# What search reads on PostgreSQL (store.search): GIN indexes over the 'simple' text-search
# configuration (no stemming: customers write in many languages); a contact by the text of the SQL
# function contact_search_text (migration 0007). SQLite has FTS5 tables instead, made by the
# migration (store.search.FTS_TABLES), outside the models.
for _name, _table, _document in (
    ("ix_messages_search", Message.__table__, "text"),  # type: ignore[attr-defined]
    ("ix_contacts_search", Contact.__table__, "contact_search_text(name, email, phone)"),  # type: ignore[attr-defined]
):
    Index(_name, func.to_tsvector(sql_text("'simple'"), sql_text(_document)), postgresql_using="gin",
          _table=_table).ddl_if(dialect="postgresql")
