"""The agents' API: conversations, replies, notes, assignment, resolve/reopen, attachments.

Visibility: admins see everything; an agent sees conversations assigned to them and those of their
teams or of no team (the shared queue).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, exists, or_, select, update

from store import assignment, outbound
from store.db import get_engine
from store.sql import agent_teams, attachments, contacts, conversations, messages, teams
from web.deps import CurrentAgent
from workers import ring_delivery, ring_pull, ring_routing

router = APIRouter(tags=["conversations"])
c = conversations.c
m = messages.c


def _visible(query: Select[Any], agent: Any) -> Select[Any]:
    if agent.role == "admin":
        return query
    mine = exists().where(agent_teams.c.agent_id == agent.id, agent_teams.c.team_id == c.team_id)
    return query.where(or_(c.assignee_id == agent.id, c.team_id.is_(None), mine))


def _summary(row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "number": row.id, "status": row.status, "channel_id": row.channel_id,
        "contact": {"id": row.contact_id, "name": row.contact_name},
        "assignee_id": row.assignee_id, "team_id": row.team_id, "priority": row.priority,
        "language": row.language, "subject": row.subject, "waiting_since": row.waiting_since,
        "last_message_at": row.last_message_at, "first_response_at": row.first_response_at,
        "resolved_at": row.resolved_at, "created_at": row.created_at, "route_error": row.route_error,
    }


def _base() -> Select[Any]:
    return select(conversations, contacts.c.name.label("contact_name")).join(contacts, contacts.c.id == c.contact_id)


@router.get("/conversations")
def list_conversations(
    agent: CurrentAgent,
    status: Literal["open", "pending", "snoozed", "resolved"] | None = None,
    assignee_id: int | None = None,
    unassigned: bool = False,
    channel_id: int | None = None,
    waiting: bool | None = Query(None, description="only conversations whose customer awaits an answer"),
    cursor: int | None = Query(None, description="the `next` of the previous page"),
    limit: int = Query(50, ge=1, le=200),
) -> dict[str, Any]:
    query = _visible(_base(), agent)
    if status:
        query = query.where(c.status == status)
    if assignee_id is not None:
        query = query.where(c.assignee_id == assignee_id)
    if unassigned:
        query = query.where(c.assignee_id.is_(None))
    if channel_id is not None:
        query = query.where(c.channel_id == channel_id)
    if waiting is not None:
        query = query.where(c.waiting_since.is_not(None) if waiting else c.waiting_since.is_(None))
    if cursor is not None:
        query = query.where(c.id < cursor)
    with get_engine().connect() as conn:
        rows = conn.execute(query.order_by(c.id.desc()).limit(limit + 1)).all()
    items = [_summary(r) for r in rows[:limit]]
    return {"items": items, "next": items[-1]["id"] if len(rows) > limit else None}


def _get(conn: Any, conversation_id: int, agent: Any) -> Any:
    row = conn.execute(_visible(_base(), agent).where(c.id == conversation_id)).first()
    if row is None:
        raise HTTPException(404, f"no conversation {conversation_id}")
    return row


@router.get("/conversations/{conversation_id}")
def get_conversation(conversation_id: int, agent: CurrentAgent) -> dict[str, Any]:
    with get_engine().connect() as conn:
        row = _get(conn, conversation_id, agent)
        contact = conn.execute(select(contacts).where(contacts.c.id == row.contact_id)).one()
        msgs = conn.execute(
            select(m.id, m.direction, m.text, m.html, m.quoted, m.subject, m.status, m.status_reason, m.private,
                   m.automatic, m.author_agent_id, m.parse_error, m.created_at, m.sent_at)
            .where(m.conversation_id == conversation_id).order_by(m.id)
        ).all()
        files: dict[int, list[dict[str, Any]]] = {}
        if msgs:
            for f in conn.execute(
                select(attachments.c.id, attachments.c.message_id, attachments.c.filename,
                       attachments.c.content_type, attachments.c.size, attachments.c.inline)
                .where(attachments.c.message_id.in_([x.id for x in msgs]))
            ):
                files.setdefault(f.message_id, []).append(
                    {"id": f.id, "filename": f.filename, "content_type": f.content_type, "size": f.size,
                     "inline": f.inline}
                )
    out = _summary(row)
    out["contact"] = {"id": contact.id, "name": contact.name, "email": contact.email, "phone": contact.phone}
    out["messages"] = [
        {**x._asdict(), "attachments": files.get(x.id, [])} for x in msgs
    ]
    return out


class ReplyIn(BaseModel):
    text: str = Field(min_length=1, max_length=100_000)
    private: bool = False


@router.post("/conversations/{conversation_id}/messages", status_code=202)
def reply(conversation_id: int, body: ReplyIn, agent: CurrentAgent) -> dict[str, Any]:
    """Store a reply (``pending``; a worker delivers it on the conversation's channel) or a
    private note (never sent)."""

    engine = get_engine()
    with engine.connect() as conn:
        _get(conn, conversation_id, agent)
    message_id = outbound.create_reply(engine, conversation_id, agent_id=agent.id, text=body.text,
                                       private=body.private)
    if not body.private:
        ring_delivery(message_id)
    return {"id": message_id, "status": "sent" if body.private else "pending", "private": body.private}


@router.post("/messages/{message_id}/retry", status_code=202)
def retry_message(message_id: int, agent: CurrentAgent) -> dict[str, Any]:
    """Send a failed reply again (e.g. after the channel's settings were fixed)."""

    engine = get_engine()
    with engine.begin() as conn:
        row = conn.execute(select(m.conversation_id, m.status, m.direction).where(m.id == message_id)).first()
        if row is None:
            raise HTTPException(404, f"no message {message_id}")
        _get(conn, row.conversation_id, agent)
        if row.direction != "out" or row.status != "failed":
            raise HTTPException(409, f"message {message_id} is {row.status}; only failed replies are retried")
        conn.execute(update(messages).where(m.id == message_id).values(status="pending", attempts=0,
                                                                       next_attempt_at=None))
    ring_delivery(message_id)
    return {"id": message_id, "status": "pending"}


class AssignIn(BaseModel):
    agent_id: int | None


def _pull(agent_id: int | None) -> None:

    if agent_id is not None:
        ring_pull(agent_id)


@router.post("/conversations/{conversation_id}/assign")
def assign(conversation_id: int, body: AssignIn, agent: CurrentAgent) -> dict[str, Any]:
    engine = get_engine()
    with engine.connect() as conn:
        _get(conn, conversation_id, agent)
    try:
        freed = assignment.assign_manually(engine, conversation_id, body.agent_id, by=agent.id)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    except assignment.ConcurrentChange as exc:
        raise HTTPException(409, str(exc)) from None
    changed = get_conversation(conversation_id, agent)  # as assigned: before the router moves it on
    if body.agent_id is None:

        ring_routing([conversation_id])
    else:
        _pull(freed)
    return changed


@router.post("/conversations/{conversation_id}/resolve")
def resolve(conversation_id: int, agent: CurrentAgent) -> dict[str, Any]:
    engine = get_engine()
    with engine.connect() as conn:
        _get(conn, conversation_id, agent)
    _pull(assignment.resolve(engine, conversation_id, by=agent.id))
    return get_conversation(conversation_id, agent)


@router.post("/conversations/{conversation_id}/reopen")
def reopen(conversation_id: int, agent: CurrentAgent) -> dict[str, Any]:

    engine = get_engine()
    with engine.connect() as conn:
        _get(conn, conversation_id, agent)
    if assignment.reopen(engine, conversation_id):
        ring_routing([conversation_id])
    return get_conversation(conversation_id, agent)


class ConversationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: int | None = Field(default=None, ge=0, le=10, description="higher is answered first")
    team_id: int | None = None
    language: str | None = Field(default=None, max_length=20)
    status: Literal["open", "pending", "snoozed"] | None = None
    snoozed_until: datetime | None = Field(default=None, description="with status snoozed: when it opens again")


@router.patch("/conversations/{conversation_id}")
def update_conversation(conversation_id: int, body: ConversationPatch, agent: CurrentAgent) -> dict[str, Any]:
    """Set priority, team, language, or status (pending: waiting on the customer; snoozed until a
    time). A changed team or language sends an unassigned conversation back through the router."""

    changes = body.model_dump(exclude_unset=True)
    if changes.get("status") == "snoozed" and not changes.get("snoozed_until"):
        raise HTTPException(422, "snoozed needs snoozed_until")
    if changes.get("snoozed_until") is not None:
        changes["snoozed_until"] = _naive_utc(changes["snoozed_until"])
    engine = get_engine()
    with engine.connect() as conn:
        _get(conn, conversation_id, agent)
        if changes.get("team_id") is not None and conn.execute(
            select(teams.c.id).where(teams.c.id == changes["team_id"])
        ).first() is None:
            raise HTTPException(422, f"no team {changes['team_id']}")
    try:
        if assignment.update_conversation(engine, conversation_id, changes):
            ring_routing([conversation_id])
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    return get_conversation(conversation_id, agent)


def _naive_utc(value: datetime) -> datetime:
    return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)


@router.get("/attachments/{attachment_id}")
def download(attachment_id: int, agent: CurrentAgent) -> Response:
    with get_engine().connect() as conn:
        row = conn.execute(
            select(attachments, m.conversation_id).join(messages, m.id == attachments.c.message_id)
            .where(attachments.c.id == attachment_id)
        ).first()
        if row is None:
            raise HTTPException(404, f"no attachment {attachment_id}")
        _get(conn, row.conversation_id, agent)
    # RFC 6266 / 5987: an ASCII fallback and the real (percent-encoded UTF-8) name.
    fallback = "".join(ch if ch.isascii() and ch.isprintable() and ch not in '"\\' else "_" for ch in row.filename)
    disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(row.filename, safe='')}"
    return Response(
        row.data, media_type=row.content_type,
        headers={"Content-Disposition": disposition, "X-Content-Type-Options": "nosniff",
                 "Content-Security-Policy": "sandbox"},
    )

