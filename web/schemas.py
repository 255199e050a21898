"""What the API answers, as typed models: the OpenAPI document at ``/docs`` is built from these.

Ids in paths, queries and bodies are :data:`Id`: a positive integer up to ``store.models.MAX_ID``
(the columns are 32-bit on PostgreSQL); anything larger is refused with 422 before it reaches the
database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from pydantic import BaseModel, Field, model_validator

from store.models import MAX_ID

Id = Annotated[int, Ge(1), Le(MAX_ID)]
Locale = Literal["en", "es", "ca", "pt", "pl"]  # store.agents.LOCALES


def _no_nul(value: Any) -> Any:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("text must not contain NUL characters (\\u0000)")
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key)
            _no_nul(item)
    elif isinstance(value, list):
        for item in value:
            _no_nul(item)
    return value


class Input(BaseModel):
    """Every request body: no text in it may hold NUL, which PostgreSQL cannot store (refused here
    with 422, the same on SQLite, rather than failing in the database)."""

    @model_validator(mode="before")
    @classmethod
    def _refuse_nul(cls, data: Any) -> Any:
        return _no_nul(data)


class ErrorOut(BaseModel):
    """Every 4xx/5xx answer."""

    detail: str = Field(description="a readable message", examples=["no conversation 12"])


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: these statuses answer :class:`ErrorOut`."""
    said = {401: "missing, invalid or revoked bearer token", 403: "the caller may not do this",
            404: "no such object, or one the caller may not see", 409: "conflicts with the object's state",
            422: "invalid input: the detail names the field and the problem"}
    return {status: {"model": ErrorOut, "description": said.get(status, "error")} for status in statuses}


# -- admin ----------------------------------------------------------------------------------------


class ChannelOut(BaseModel):
    id: int
    kind: str
    name: str
    enabled: bool
    config: dict[str, Any] = Field(description="the settings, without secrets; URLs with credentials redacted")
    secrets_set: list[str] = Field(description="names of the secret settings that are stored")
    webhook_url: str
    webhook_urls: dict[str, str] = Field(
        default_factory=dict, description="every URL the provider must call, by what it is for (an SMS number's "
                                          "messages and voice URLs), for an admin who sets them by hand")
    status: Literal["ok", "error", "disabled"]
    last_error: str | None
    created_at: datetime
    next_poll_at: datetime | None = Field(
        default=None, description="pull channels: when they are polled next (later after an error or a rate limit)")


class ChannelList(BaseModel):
    items: list[ChannelOut]
    next: int | None = None


class AgentOut(BaseModel):
    id: int
    name: str
    email: str
    role: Literal["agent", "admin"]
    presence: Literal["online", "away", "offline"]
    capacity: int
    active_conversations: int
    languages: list[str]
    teams: list[int]
    active: bool
    last_assigned_at: datetime | None
    locale: Locale = Field(description="the inbox's language for this agent")
    last_seen_at: datetime | None = Field(description="the inbox's last heartbeat (null: never)")
    capacities: dict[str, int] = Field(default_factory=dict, description=(
        "the agent's own capacity per group of channel kinds (email, chat, messaging); a group left out "
        "takes the team default, else `capacity`"))
    skills: list[str] = Field(default_factory=list, description="free-form skills conversations may ask for")


class AgentCreated(AgentOut):
    token: str = Field(description="the agent's API token; shown this once")


class AgentList(BaseModel):
    items: list[AgentOut]
    next: int | None = None


class PresenceOut(BaseModel):
    id: int
    status: Literal["online", "away", "offline"]


class TeamOut(BaseModel):
    id: int
    name: str
    policy: str = Field(default="least_loaded", description="least_loaded, round_robin or sticky")
    capacities: dict[str, int] = Field(default_factory=dict, description=(
        "the members' default capacity per group of channel kinds (email, chat, messaging)"))
    skill_wait_seconds: int = Field(default=120, description=(
        "how long a conversation waits for an agent with its skills before any member may take it"))
    sticky_seconds: int = Field(default=86400, description=(
        "sticky: a customer back within this time goes to the agent who last helped them"))
    return_on_away: bool = Field(default=False, description=(
        "an agent set away gives this team's open conversations back to the queue"))
    hours: dict[str, Any] | None = Field(default=None, description="business hours (None: the shop's)")
    reassign_after: float | None = Field(default=None, description="seconds of business time before an "
                                         "unanswered conversation goes back to the queue; None: never")


class TeamList(BaseModel):
    items: list[TeamOut]
    next: int | None = None


class FailedJob(BaseModel):
    job: Literal["route", "deliver", "poll"]
    conversation_id: int | None = None
    message_id: int | None = None
    channel_id: int | None = None
    error: str | None
    attempts: int | None = None


class FailedJobList(BaseModel):
    items: list[FailedJob]
    next: int | None = None


# -- conversations --------------------------------------------------------------------------------


class ContactRef(BaseModel):
    id: int
    name: str | None


class ContactOut(ContactRef):
    email: str | None
    phone: str | None
    unreachable_reason: str | None = Field(
        default=None, description="set while the customer cannot be written to on this channel (opted out, "
                                  "blocked): replies are refused with 422")


class ConversationOut(BaseModel):
    id: int
    number: int = Field(description="the ticket number customers see")
    status: Literal["open", "pending", "snoozed", "resolved"]
    channel_id: int
    contact: ContactRef
    assignee_id: int | None
    team_id: int | None
    priority: int
    priority_name: Literal["urgent", "high", "normal", "low"] = Field(
        default="normal", description="the priority's name: urgent from 3, high from 1, normal at 0, low below")
    skills: list[str] = Field(default_factory=list, description="skills the agent taking it needs (set by rules; until widened)")
    language: str | None
    subject: str | None
    waiting_since: datetime | None = Field(description="since when the customer awaits an answer")
    last_message_at: datetime | None
    first_response_at: datetime | None
    resolved_at: datetime | None
    snoozed_until: datetime | None
    created_at: datetime
    route_error: str | None
    unreachable_reason: str | None = Field(
        default=None, description="set while the customer cannot be written to on this conversation's channel")
    channel_kind: str
    tags: list[str] = Field(default_factory=list, description="set by agents and by rules; `?tag=` filters on them")
    unread: int = Field(description="the customer's messages after the caller's read marker")
    preview: str | None = Field(description="the first 140 characters of the last message")
    reply_window_ends_at: datetime | None = Field(
        description="when the channel stops taking replies, unless the customer writes again; null: no window")
    first_response_due: datetime | None = Field(
        default=None, description="the first answer's SLA due time, in business hours; null: not waiting for one")
    next_response_due: datetime | None = Field(
        default=None, description="the next answer's SLA due time, in business hours; null: not waiting for one")


class ConversationList(BaseModel):
    items: list[ConversationOut]
    next: int | None = Field(description="the `cursor` of the next page; null on the last")


class AttachmentOut(BaseModel):
    id: int
    filename: str
    content_type: str
    size: int
    inline: bool
    state: Literal["done", "pending", "failed"] = Field(
        default="done", description="pending: still at the provider, being fetched; failed: see error")
    error: str | None = Field(default=None, description="why the file could not be fetched (or, while "
                                                        "pending, why the last try failed)")


class MessageEditOut(BaseModel):
    text: str
    until: datetime = Field(description="when the customer replaced this text")


class MessageOut(BaseModel):
    id: int
    direction: Literal["in", "out"]
    text: str
    html: str | None = Field(description="sanitised")
    quoted: str | None
    subject: str | None
    status: str = Field(description="in: received; out: pending, sending, sent, delivered, read or failed")
    status_reason: str | None
    private: bool
    automatic: bool
    author_agent_id: int | None
    parse_error: str | None
    created_at: datetime
    sent_at: datetime | None
    edited_at: datetime | None = Field(default=None, description="when the customer changed the message")
    edits: list[MessageEditOut] | None = Field(default=None, description="the texts it had before, oldest first")
    attachments: list[AttachmentOut]


class ConversationDetail(ConversationOut):
    contact: ContactOut  # type: ignore[assignment]
    messages: list[MessageOut]
    queue_position: int | None = Field(default=None, description=(
        "waiting for an agent: its place (1 = next) among its team's waiting conversations of its kind of channel"))
    expected_wait_seconds: float | None = Field(default=None, description=(
        "waiting: the expected seconds until an agent takes it (null when nobody online may take it)"))


class CountsOut(BaseModel):
    """Open and pending conversations the caller may see."""

    mine: int = Field(description="assigned to the caller")
    unassigned: int = Field(description="open, assigned to nobody")
    all: int
    unread: int = Field(description="with a customer message the caller has not read")


class ReadOut(BaseModel):
    conversation_id: int
    last_read_message_id: int | None = Field(description="null: the conversation has no message yet")


class IdentityOut(BaseModel):
    channel_id: int
    channel_kind: str
    external_id: str


class ContactDetail(ContactOut):
    created_at: datetime
    attributes: dict[str, Any] = Field(default_factory=dict, description="the shop's own facts about the customer "
                                       "(routing rules read them); admins set them with PUT /contacts/{id}/attributes")
    identities: list[IdentityOut]
    conversations: list[ConversationOut] = Field(description="those the caller may see, newest first")


class CannedOut(BaseModel):
    id: int
    shortcut: str
    title: str
    text: str
    rendered: str | None = Field(default=None, description="with conversation_id: the text, placeholders filled")
    created_by: int | None
    created_at: datetime
    updated_at: datetime


class CannedList(BaseModel):
    items: list[CannedOut]
    next: int | None = None


class ReplyOut(BaseModel):
    id: int
    status: Literal["pending", "sent"]
    private: bool


class RetryOut(BaseModel):
    id: int
    status: Literal["pending"]


# -- search ---------------------------------------------------------------------------------------


class MessageFound(BaseModel):
    id: int
    snippet: str = Field(description="the text around the first match, on one line")
    created_at: datetime


class SearchHit(BaseModel):
    conversation: ConversationOut
    message: MessageFound | None = Field(description="the message that matched; null for a contact")
    contact: ContactOut | None = Field(description="the contact that matched, with `conversation` their newest the "
                                                   "caller may see; null for a message")


class SearchList(BaseModel):
    items: list[SearchHit]
    next: str | None = Field(description="the `cursor` of the next page; null on the last")
