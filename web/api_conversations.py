"""The agents' API: conversations, replies, notes, assignment, resolve/reopen, attachments.

Visibility is one rule, ``router.access.may_see``: admins see everything; an agent sees the
conversations assigned to them, those of their teams, and the shared queue (unassigned, no team).
What an agent may not see answers 404 exactly as a missing id does. Handlers are plain ``def``:
they wait on the database, so FastAPI runs them in its thread pool.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Path, Query, Response
from pydantic import ConfigDict, Field, field_validator, model_validator

from router.queue import priority_name, priority_value
from router.waits import queue_place
from router.sla import retarget as sla_retarget
from store import agents as agent_store
from store import assignment, inbox
from store import tags as tag_store
from store import conversations as store
from store.db import get_engine
from web.deps import CurrentAgent, check_visible
from router.rules import Label
from web.schemas import (
    AttachmentOut,
    ContactOut,
    ConversationDetail,
    ConversationList,
    ConversationOut,
    Id,
    Input,
    MessageOut,
    RetryOut,
    errors,
)
from workers import ring_delivery, ring_pull, ring_routing

router = APIRouter(tags=["conversations"], responses=errors(401, 422))
NOT_FOUND = errors(404)
NOT_FOUND_OR_CONFLICT = errors(404, 409)


def summary_out(row: Any, extra: inbox.Extra | None = None, tags: list[str] | None = None) -> ConversationOut:
    """A conversation row (``store.conversations.summaries``) as the API shows it, with what the
    inbox adds for the caller (``store.inbox.extra``) and its ``tags`` (``store.tags.tags_of``)."""
    extra = extra or inbox.Extra()
    return ConversationOut(
        id=row.id, number=row.id, status=row.status, channel_id=row.channel_id,
        contact={"id": row.contact_id, "name": row.contact_name}, assignee_id=row.assignee_id,
        team_id=row.team_id, priority=row.priority, priority_name=priority_name(row.priority or 0),
        skills=[x for x in row.skills if isinstance(x, str)] if isinstance(row.skills, list) else [],
        language=row.language, subject=row.subject,
        waiting_since=row.waiting_since, last_message_at=row.last_message_at,
        first_response_at=row.first_response_at, resolved_at=row.resolved_at, snoozed_until=row.snoozed_until,
        created_at=row.created_at, route_error=row.route_error, unreachable_reason=row.unreachable_reason,
        channel_kind=row.channel_kind, tags=tags or [],
        unread=extra.unread, preview=extra.preview, reply_window_ends_at=extra.reply_window_ends_at,
        first_response_due=row.first_response_due, next_response_due=row.next_response_due,
    )


@router.get("/conversations")
def list_conversations(
    agent: CurrentAgent,
    view: Literal["mine", "unassigned", "all"] = Query("all", description="mine: assigned to the caller; "
                                                       "unassigned: open and nobody's; all: everything visible"),
    team_id: Id | None = None,
    status: Literal["open", "pending", "snoozed", "resolved"] | None = None,
    assignee_id: Id | None = None,
    unassigned: bool = False,
    channel_id: Id | None = None,
    waiting: bool | None = Query(None, description="only conversations whose customer awaits an answer"),
    tag: str | None = Query(None, max_length=50, pattern=r"^[^\x00]*$",
                            description="only conversations with this tag"),
    cursor: Id | None = Query(None, description="the `next` of the previous page"),
    limit: int = Query(50, ge=1, le=200),
) -> ConversationList:
    """The conversations the caller may see, newest first, each with the caller's ``unread`` count,
    a ``preview`` of its last message and its ``reply_window_ends_at``."""
    filters = store.Filters(status=status, assignee_id=assignee_id, unassigned=unassigned, channel_id=channel_id,
                            team_id=team_id, view=view, waiting=waiting, before_id=cursor, tag=tag)
    engine = get_engine()
    rows, more = store.list_visible(engine, agent.id, admin=agent.role == "admin", filters=filters, limit=limit,
                                    columns=inbox.columns(agent.id))
    tagged = tag_store.tags_of(engine, [r.id for r in rows])
    items = [summary_out(r, inbox.extra(r), tagged[r.id]) for r in rows]
    return ConversationList(items=items, next=items[-1].id if more else None)


def visible(conversation_id: int, agent: Any) -> Any:
    row = store.summary(get_engine(), conversation_id)
    check_visible(agent, row, f"no conversation {conversation_id}")
    return row


@router.get("/conversations/{conversation_id}", responses=NOT_FOUND)
def get_conversation(conversation_id: Id, agent: CurrentAgent) -> ConversationDetail:
    """A conversation with its contact and messages."""
    found = store.detail(get_engine(), conversation_id)
    check_visible(agent, found[0] if found else None, f"no conversation {conversation_id}")
    return _detail(conversation_id, found, agent.id)


def _detail(conversation_id: int, found: Any = None, agent_id: int | None = None) -> ConversationDetail:
    """The conversation as it is now; after a change the caller made, whether or not they still
    see it (assigned to a colleague outside their teams, say)."""
    found = found or store.detail(get_engine(), conversation_id)
    if found is None:  # deleted meanwhile
        raise HTTPException(404, f"no conversation {conversation_id}")
    row, contact, msgs, files = found
    extra = inbox.extras(get_engine(), agent_id, [row])[row.id] if agent_id is not None else None
    queued = row.status == "open" and row.assignee_id is None
    place, wait = queue_place(get_engine(), row.id) if queued else (None, None)
    return ConversationDetail(
        queue_position=place, expected_wait_seconds=wait,
        **summary_out(row, extra, tag_store.tags_of(get_engine(), [row.id])[row.id]).model_dump(exclude={"contact"}),
        contact=ContactOut(id=contact.id, name=contact.name, email=contact.email, phone=contact.phone,
                           unreachable_reason=row.unreachable_reason),
        messages=[
            MessageOut(**x._asdict(), attachments=[
                AttachmentOut(id=a.id, filename=a.filename, content_type=a.content_type, size=a.size, inline=a.inline,
                              state=a.fetch_state, error=a.fetch_error)
                for a in files.get(x.id, [])])
            for x in msgs
        ],
    )


@router.post("/messages/{message_id}/retry", status_code=202, responses=NOT_FOUND_OR_CONFLICT)
def retry_message(message_id: Id, agent: CurrentAgent) -> RetryOut:
    """Send a failed reply again (e.g. after the channel's settings were fixed)."""
    row = store.message(get_engine(), message_id)
    check_visible(agent, row, f"no message {message_id}")
    if row.direction != "out" or not store.retry(get_engine(), message_id):
        raise HTTPException(409, f"message {message_id} is {row.status}; only failed replies are retried")
    ring_delivery(message_id)
    return RetryOut(id=message_id, status="pending")


@router.post("/conversations/{conversation_id}/move-to-dm", responses=NOT_FOUND_OR_CONFLICT)
def move_to_dm(conversation_id: Id, agent: CurrentAgent) -> ConversationDetail:
    """Continue a public conversation (an X mention thread) in direct messages with the customer:
    the next replies go there, and the customer's direct messages join this conversation. 409 when
    the channel has no direct messages or the customer's are open in another conversation."""
    visible(conversation_id, agent)
    try:
        store.move_to_direct(get_engine(), conversation_id)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    except store.NoDirectThread as exc:
        raise HTTPException(409, str(exc)) from None
    return _detail(conversation_id)


class AssignIn(Input):
    agent_id: Id | None = Field(description="the agent to assign; null puts the conversation back in the queue")


@router.post("/conversations/{conversation_id}/assign", responses=NOT_FOUND_OR_CONFLICT)
def assign(conversation_id: Id, body: AssignIn, agent: CurrentAgent) -> ConversationDetail:
    """Assign to an active agent (beyond their capacity, if need be), or back to the queue."""
    visible(conversation_id, agent)
    engine = get_engine()
    if body.agent_id is not None and agent_store.find(engine, body.agent_id, active=True) is None:
        raise HTTPException(404, f"no active agent {body.agent_id}")
    try:
        freed = assignment.assign_manually(engine, conversation_id, body.agent_id, by=agent.id)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    except (ValueError, assignment.ConcurrentChange) as exc:
        raise HTTPException(409, str(exc)) from None
    changed = _detail(conversation_id, agent_id=agent.id)  # as assigned: before the router moves it on
    if body.agent_id is None:
        ring_routing([conversation_id])
    elif freed is not None:
        ring_pull(freed)
    return changed


@router.post("/conversations/{conversation_id}/resolve", responses=NOT_FOUND)
def resolve(conversation_id: Id, agent: CurrentAgent) -> ConversationDetail:
    visible(conversation_id, agent)
    freed = assignment.resolve(get_engine(), conversation_id, by=agent.id)
    if freed is not None:
        ring_pull(freed)
    return _detail(conversation_id, agent_id=agent.id)


@router.post("/conversations/{conversation_id}/reopen", responses=NOT_FOUND)
def reopen(conversation_id: Id, agent: CurrentAgent) -> ConversationDetail:
    visible(conversation_id, agent)
    if assignment.reopen(get_engine(), conversation_id):
        ring_routing([conversation_id])
    return _detail(conversation_id, agent_id=agent.id)


class ConversationPatch(Input):
    model_config = ConfigDict(extra="forbid")

    priority: int | Literal["urgent", "high", "normal", "low"] | None = Field(
        default=None, description="urgent, high, normal, low, or a number from -1 to 10: higher is answered first")
    team_id: Id | None = None
    language: str | None = Field(default=None, max_length=20)
    status: Literal["open", "pending", "snoozed"] | None = None
    snoozed_until: datetime | None = Field(default=None, description="with status snoozed: when it opens again")

    @model_validator(mode="after")
    def _not_null(self) -> ConversationPatch:
        """Leaving a field out keeps it; null is no value for these."""
        for name in ("priority", "status"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null (leave it out to keep it)")
        return self

    @field_validator("priority")
    @classmethod
    def _priority(cls, value: int | str | None) -> int | None:
        """A name becomes its number; numbers from -1 (low) to 10."""
        if value is None:
            return None
        number = priority_value(value)
        if not -1 <= number <= 10:
            raise ValueError("a priority number goes from -1 to 10")
        return number

    @field_validator("snoozed_until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """Stored as naive UTC; a time that UTC cannot express (year 1 with an offset) is refused."""
        if value is None or value.tzinfo is None:
            return value
        try:
            return value.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:
            raise ValueError("out of range once converted to UTC") from None


@router.patch("/conversations/{conversation_id}", responses=NOT_FOUND_OR_CONFLICT)
def update_conversation(conversation_id: Id, body: ConversationPatch, agent: CurrentAgent) -> ConversationDetail:
    """Set priority, team, language, or status (pending: waiting on the customer; snoozed until a
    time). A changed team or language sends an unassigned conversation back through the router."""
    changes = body.model_dump(exclude_unset=True)
    if changes.get("status") == "snoozed" and not changes.get("snoozed_until"):
        raise HTTPException(422, "snoozed needs snoozed_until")
    visible(conversation_id, agent)
    engine = get_engine()
    if changes.get("team_id") is not None and not store.team_exists(engine, changes["team_id"]):
        raise HTTPException(422, f"no team {changes['team_id']}")
    try:
        if assignment.update_conversation(engine, conversation_id, changes):
            ring_routing([conversation_id])
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    if "priority" in changes or "team_id" in changes:  # the SLA target (priority) or hours (team) change
        sla_retarget(engine, conversation_id)
    return _detail(conversation_id, agent_id=agent.id)


@router.get("/attachments/{attachment_id}", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}, "description": "the file"},
                       **NOT_FOUND_OR_CONFLICT})
def download(attachment_id: Id, agent: CurrentAgent) -> Response:
    """An attachment's bytes, as a download (never rendered inline); 409 while the file is still
    being fetched from the provider, or when that failed."""
    row = store.attachment(get_engine(), attachment_id)
    check_visible(agent, row, f"no attachment {attachment_id}")
    if row.fetch_state == "pending":
        raise HTTPException(409, f"attachment {attachment_id} is still being fetched from the provider; try again "
                                 "shortly" + (f" (last try: {row.fetch_error})" if row.fetch_error else ""))
    if row.fetch_state == "failed":
        raise HTTPException(409, f"attachment {attachment_id} could not be fetched from the provider: "
                                 f"{row.fetch_error or 'no reason given'}")
    # RFC 6266 / 5987: an ASCII fallback and the real (percent-encoded UTF-8) name.
    fallback = "".join(ch if ch.isascii() and ch.isprintable() and ch not in '"\\' else "_" for ch in row.filename)
    disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(row.filename, safe='')}"
    return Response(
        row.data, media_type=row.content_type,
        headers={"Content-Disposition": disposition, "X-Content-Type-Options": "nosniff",
                 "Content-Security-Policy": "sandbox"},
    )


class TagIn(Input):
    tag: Label = Field(description="up to 50 characters, no commas")


@router.post("/conversations/{conversation_id}/tags", responses=NOT_FOUND)
def add_tag(conversation_id: Id, body: TagIn, agent: CurrentAgent) -> ConversationDetail:
    """Tag a conversation (a tag it has already is kept once)."""
    visible(conversation_id, agent)
    tag_store.add_tag(get_engine(), conversation_id, body.tag, agent.id)
    return _detail(conversation_id, agent_id=agent.id)


@router.delete("/conversations/{conversation_id}/tags/{tag}", responses=NOT_FOUND)
def remove_tag(conversation_id: Id, tag: Annotated[str, Path(max_length=50, pattern=r"^[^\x00]*$")],
               agent: CurrentAgent) -> ConversationDetail:
    """Take a tag off a conversation; 404 if it does not have it."""
    visible(conversation_id, agent)
    if not tag_store.remove_tag(get_engine(), conversation_id, tag.strip(), agent.id):
        raise HTTPException(404, f"conversation {conversation_id} has no tag {tag!r}")
    return _detail(conversation_id, agent_id=agent.id)
