"""Admin API: channels, agents, teams, failed jobs. Agents may read themselves and set presence."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import delete, func, select, update
from starlette.concurrency import run_in_threadpool

from connectors.errors import ConfigError
from store import agents as agent_store
from store import channels as channel_store
from store import crypto
from store.db import get_engine
from store.models import utcnow
from store.sql import agents, channels, conversations, messages, teams
from web.deps import Admin, CurrentAgent
from web.webhooks import forget
from workers import ring_poll, ring_pull

router = APIRouter()


# -- channels -----------------------------------------------------------------------------------


class ChannelIn(BaseModel):
    kind: str = Field(max_length=20)
    name: str = Field(min_length=1, max_length=200)
    config: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


class ChannelPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    config: dict[str, Any] | None = None  # merged: secrets left out are kept
    enabled: bool | None = None


class ChannelOut(BaseModel):
    id: int
    kind: str
    name: str
    enabled: bool
    config: dict[str, Any]  # secrets are never returned
    secrets_set: list[str]
    webhook_url: str
    status: str
    last_error: str | None
    created_at: datetime


def _channel_out(row: Any) -> ChannelOut:
    from store.settings import get_settings

    status = row.status if row.enabled else "disabled"
    return ChannelOut(
        id=row.id, kind=row.kind, name=row.name, enabled=row.enabled, config=row.config or {},
        secrets_set=sorted(crypto.decrypt(row.secrets)), status=status, last_error=row.last_error,
        webhook_url=f"{get_settings().public_url.rstrip('/')}/webhooks/{row.id}", created_at=row.created_at,
    )


def _check(kind: str, values: dict[str, Any], verify: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate the settings and, when asked, test them against the service."""
    from connectors import connector_class
    from connectors.base import parse_config

    try:
        public, secret = channel_store.split_config(kind, values)
        if verify:
            cls = connector_class(kind)
            cls(parse_config(cls, values)).check()
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    return public, secret


def _load(channel_id: int) -> Any:
    row = channel_store.load_channel(get_engine(), channel_id)
    if row is None:
        raise HTTPException(404, f"no channel {channel_id}")
    return row


@router.post("/channels", status_code=201, response_model=ChannelOut, tags=["channels"])
async def create_channel(body: ChannelIn, _admin: Admin, verify: bool = True) -> ChannelOut:
    """Create a channel. Its settings are validated and (``verify``, default on) its logins
    tested now, so a wrong password shows here rather than on the first message."""
    await run_in_threadpool(_check, body.kind, body.config, verify)
    channel_id = channel_store.create_channel(get_engine(), body.kind, body.name, body.config, enabled=body.enabled)
    _notify_pollers(channel_id)
    return _channel_out(_load(channel_id))


@router.get("/channels", tags=["channels"])
def list_channels(_admin: Admin) -> dict[str, Any]:
    with get_engine().connect() as conn:
        rows = conn.execute(select(channels).order_by(channels.c.id)).all()
    return {"items": [_channel_out(r) for r in rows], "next": None}


@router.get("/channels/{channel_id}", response_model=ChannelOut, tags=["channels"])
def get_channel(channel_id: int, _admin: Admin) -> ChannelOut:
    return _channel_out(_load(channel_id))


@router.patch("/channels/{channel_id}", response_model=ChannelOut, tags=["channels"])
async def update_channel(channel_id: int, body: ChannelPatch, _admin: Admin, verify: bool = True) -> ChannelOut:
    row = _load(channel_id)
    values: dict[str, Any] = {"updated_at": utcnow()}
    if body.config is not None:
        merged = channel_store.merged_values(row, body.config)
        public, secret = await run_in_threadpool(_check, row.kind, merged, verify)
        values.update(config=public, secrets=crypto.encrypt(secret) if secret else None, status="ok",
                      last_error=None, error_count=0, next_poll_at=utcnow())
    if body.name is not None:
        values["name"] = body.name
    if body.enabled is not None:
        values["enabled"] = body.enabled
    with get_engine().begin() as conn:
        conn.execute(update(channels).where(channels.c.id == channel_id).values(**values))
    forget(channel_id)
    _notify_pollers(channel_id)
    return _channel_out(_load(channel_id))


@router.delete("/channels/{channel_id}", status_code=204, tags=["channels"])
def delete_channel(channel_id: int, _admin: Admin) -> Response:
    """Delete a channel that has no conversations; one with history can only be disabled."""
    _load(channel_id)
    with get_engine().begin() as conn:
        used = conn.execute(
            select(func.count()).select_from(conversations).where(conversations.c.channel_id == channel_id)
        ).scalar_one()
        if used:
            raise HTTPException(409, f"channel {channel_id} has {used} conversations; disable it instead")
        from store.sql import identities

        conn.execute(delete(identities).where(identities.c.channel_id == channel_id))
        conn.execute(delete(channels).where(channels.c.id == channel_id))
    forget(channel_id)
    return Response(status_code=204)


def _notify_pollers(channel_id: int) -> None:
    row = _load(channel_id)
    from connectors import connector_class

    if row.enabled and connector_class(row.kind).capabilities.pull:
        ring_poll(channel_id)


# -- agents and teams ---------------------------------------------------------------------------


class AgentIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)
    role: Literal["agent", "admin"] = "agent"
    capacity: int = Field(default=5, ge=0, le=1000)
    languages: list[str] = Field(default_factory=list)
    teams: list[int | str] = Field(default_factory=list)  # team ids or names (created if new)


class AgentPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Literal["agent", "admin"] | None = None
    capacity: int | None = Field(default=None, ge=0, le=1000)
    languages: list[str] | None = None
    teams: list[int | str] | None = None
    active: bool | None = None


class Presence(BaseModel):
    status: Literal["online", "away", "offline"]


def _agent_out(conn: Any, row: Any) -> dict[str, Any]:
    langs, team_ids = agent_store.skills(conn, row.id)
    return {
        "id": row.id, "name": row.name, "email": row.email, "role": row.role, "presence": row.presence,
        "capacity": row.capacity, "active_conversations": row.active_count, "languages": langs,
        "teams": team_ids, "active": row.active, "last_assigned_at": row.last_assigned_at,
    }


def _team_ids(conn: Any, refs: list[int | str]) -> list[int]:
    ids = []
    for ref in refs:
        if isinstance(ref, int):
            if conn.execute(select(teams.c.id).where(teams.c.id == ref)).first() is None:
                raise HTTPException(422, f"no team {ref}")
            ids.append(ref)
        else:
            found = conn.execute(select(teams.c.id).where(teams.c.name == ref)).scalar()
            ids.append(found or conn.execute(teams.insert().values(name=ref).returning(teams.c.id)).scalar_one())
    return ids


@router.post("/agents", status_code=201, tags=["agents"])
def create_agent(body: AgentIn, _admin: Admin) -> dict[str, Any]:
    """Create an agent; the answer carries their API token, shown this once."""
    engine = get_engine()
    with engine.begin() as conn:
        team_ids = _team_ids(conn, body.teams)
    try:
        agent_id, token = agent_store.create_agent(
            engine, name=body.name, email=body.email, role=body.role, capacity=body.capacity,
            languages=body.languages, team_ids=team_ids,
        )
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    with engine.connect() as conn:
        return {**_agent_out(conn, agent_store.get(conn, agent_id)), "token": token}


@router.get("/agents", tags=["agents"])
def list_agents(_agent: CurrentAgent) -> dict[str, Any]:
    with get_engine().connect() as conn:
        rows = conn.execute(select(agents).order_by(agents.c.id)).all()
        return {"items": [_agent_out(conn, r) for r in rows], "next": None}


@router.get("/me", tags=["agents"])
def me(agent: CurrentAgent) -> dict[str, Any]:
    with get_engine().connect() as conn:
        return _agent_out(conn, agent)


@router.get("/agents/{agent_id}", tags=["agents"])
def get_agent(agent_id: int, _agent: CurrentAgent) -> dict[str, Any]:
    with get_engine().connect() as conn:
        row = agent_store.get(conn, agent_id)
        if row is None:
            raise HTTPException(404, f"no agent {agent_id}")
        return _agent_out(conn, row)


@router.patch("/agents/{agent_id}", tags=["agents"])
def update_agent(agent_id: int, body: AgentPatch, _admin: Admin) -> dict[str, Any]:
    engine = get_engine()
    with engine.begin() as conn:
        if agent_store.get(conn, agent_id) is None:
            raise HTTPException(404, f"no agent {agent_id}")
        values = body.model_dump(exclude_none=True, exclude={"languages", "teams"})
        if values:
            conn.execute(update(agents).where(agents.c.id == agent_id).values(**values))
        agent_store.set_skills(
            conn, agent_id, languages=body.languages,
            team_ids=_team_ids(conn, body.teams) if body.teams is not None else None,
        )
    _pull(agent_id)
    with engine.connect() as conn:
        return _agent_out(conn, agent_store.get(conn, agent_id))


@router.put("/agents/{agent_id}/presence", tags=["agents"])
def set_presence(agent_id: int, body: Presence, agent: CurrentAgent) -> dict[str, Any]:
    """Agents set their own presence; admins anyone's. Coming online pulls waiting conversations."""
    if agent.id != agent_id and agent.role != "admin":
        raise HTTPException(403, "agents set only their own presence")
    engine = get_engine()
    with engine.connect() as conn:
        if agent_store.get(conn, agent_id) is None:
            raise HTTPException(404, f"no agent {agent_id}")
    if agent_store.set_presence(engine, agent_id, body.status):
        _pull(agent_id)
    return {"id": agent_id, "status": body.status}


def _pull(agent_id: int) -> None:
    ring_pull(agent_id)


class TeamIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)


@router.post("/teams", status_code=201, tags=["agents"])
def create_team(body: TeamIn, _admin: Admin) -> dict[str, Any]:
    with get_engine().begin() as conn:
        if conn.execute(select(teams.c.id).where(teams.c.name == body.name)).first():
            raise HTTPException(409, f"team {body.name!r} exists")
        team_id = conn.execute(teams.insert().values(name=body.name).returning(teams.c.id)).scalar_one()
    return {"id": team_id, "name": body.name}


@router.get("/teams", tags=["agents"])
def list_teams(_agent: CurrentAgent) -> dict[str, Any]:
    with get_engine().connect() as conn:
        rows = conn.execute(select(teams).order_by(teams.c.id)).all()
    return {"items": [{"id": r.id, "name": r.name} for r in rows], "next": None}


# -- failed jobs --------------------------------------------------------------------------------


@router.get("/jobs/failed", tags=["admin"])
def failed_jobs(_admin: Admin, limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    """Work that stopped after its attempts ran out, with its last error."""
    c, m = conversations.c, messages.c
    with get_engine().connect() as conn:
        routes = conn.execute(
            select(c.id, c.route_error, c.updated_at)
            .where(c.route_error.is_not(None), c.needs_routing.is_(False)).order_by(c.id.desc()).limit(limit)
        ).all()
        sends = conn.execute(
            select(m.id, m.conversation_id, m.status_reason, m.attempts, m.created_at)
            .where(m.direction == "out", m.status == "failed").order_by(m.id.desc()).limit(limit)
        ).all()
        polls = conn.execute(
            select(channels.c.id, channels.c.last_error, channels.c.error_count).where(channels.c.status == "error")
        ).all()
    return {
        "items": [{"job": "route", "conversation_id": r.id, "error": r.route_error} for r in routes]
        + [{"job": "deliver", "message_id": s.id, "conversation_id": s.conversation_id, "error": s.status_reason,
            "attempts": s.attempts} for s in sends]
        + [{"job": "poll", "channel_id": p.id, "error": p.last_error, "attempts": p.error_count} for p in polls],
        "next": None,
    }
