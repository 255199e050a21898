"""Admin API: channels, agents (with passwords, invite links, tokens), teams, failed jobs. Agents
may read themselves and set presence.

Handlers that wait on the database or a provider are plain ``def``: FastAPI runs them in its
thread pool, so they never block the event loop.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors import REGISTRY, connector_class
from connectors.base import parse_config
from connectors.errors import ConfigError, ConnectorError
from router import hours as hours_rule
from router.policies import DEFAULT_POLICY, POLICIES, STICKY_SECONDS
from router.widening import SKILL_WAIT_SECONDS
from store import agents as agent_store
from store import channels as channel_store
from store import crypto, passwords
from store import invites as invite_store
from store import teams as team_store
from store.db import get_engine
from store.queries import failed_jobs as failed_job_rows
from store.settings import get_settings
from web.deps import Admin, CurrentAgent
from web.schemas import (
    AgentCreated,
    AgentList,
    AgentOut,
    ChannelList,
    ChannelOut,
    FailedJobList,
    Id,
    Input,
    Locale,
    PresenceOut,
    TeamList,
    TeamOut,
    errors,
)
from web.webhooks import forget
from workers import ring_poll, ring_pull

router = APIRouter(responses=errors(401, 422))
ADMIN_ONLY = errors(403)

# -- channels -----------------------------------------------------------------------------------


class ChannelIn(Input):
    kind: str = Field(max_length=20, description="a channel kind this server knows",
                      json_schema_extra={"enum": sorted(REGISTRY)})
    name: str = Field(min_length=1, max_length=200)
    config: dict[str, Any] = Field(default_factory=dict, description="the kind's settings; secrets write-only")
    enabled: bool = True


class ChannelPatch(Input):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    config: dict[str, Any] | None = Field(default=None, description="merged: secrets left out are kept")
    enabled: bool | None = None


def _channel_out(row: Any) -> ChannelOut:
    url = channel_store.webhook_url(row.id)
    try:
        urls = connector_class(row.kind).webhook_urls(row.config or {}, url)
    except (KeyError, ImportError):
        urls = {}
    return ChannelOut(
        id=row.id, kind=row.kind, name=row.name, enabled=row.enabled, config=row.config or {},
        secrets_set=sorted(crypto.decrypt(row.secrets)), status=row.status if row.enabled else "disabled",
        last_error=row.last_error, webhook_url=url, webhook_urls=urls, created_at=row.created_at,
        next_poll_at=row.next_poll_at if channel_store.is_pull(row.kind) else None,
    )


def _check(kind: str, values: dict[str, Any], verify: bool, channel_id: int | None = None) -> dict[str, Any]:
    """Validate the settings; with ``verify``, test them against the service; with a
    ``channel_id``, register its webhook with the provider (the connector's ``webhook_setup``).
    Returns the settings to save: ``values`` with the secrets they generated (a webhook's secret
    token, so the one registered is the one saved) and what the check learned (a bot's name)."""
    try:
        channel_store.split_config(kind, values)
        cls = connector_class(kind)
        config = parse_config(cls, values)
        values = {**values, **channel_store.generated_secrets(config, values)}
        connector = cls(config, channel_id=channel_id)
        if verify:
            values.update(connector.check() or {})
        if channel_id is not None:
            connector.webhook_setup(channel_store.webhook_url(channel_id))
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    return values


def _load(channel_id: int) -> Any:
    row = channel_store.load_channel(get_engine(), channel_id)
    if row is None:
        raise HTTPException(404, f"no channel {channel_id}")
    return row


@router.post("/channels", status_code=201, tags=["channels"], responses=ADMIN_ONLY)
def create_channel(body: ChannelIn, _admin: Admin,
                   verify: bool = Query(True, description="test the logins against the service now")) -> ChannelOut:
    """Create a channel. Its settings are validated and (``verify``) its logins tested now, so a
    wrong password shows here rather than on the first message; then its webhook is registered
    with the provider where the channel needs one (422 with the provider's reason if refused)."""
    values = _check(body.kind, body.config, verify)
    engine = get_engine()
    channel_id = channel_store.create_channel(engine, body.kind, body.name, values, enabled=body.enabled)
    try:
        _check(body.kind, values, verify=False, channel_id=channel_id)
    except HTTPException:
        channel_store.delete_channel(engine, channel_id)
        raise
    _notify_pollers(channel_id)
    return _channel_out(_load(channel_id))


@router.get("/channels", tags=["channels"], responses=ADMIN_ONLY)
def list_channels(_admin: Admin) -> ChannelList:
    return ChannelList(items=[_channel_out(r) for r in channel_store.list_channels(get_engine())])


@router.get("/channels/{channel_id}", tags=["channels"], responses=errors(403, 404))
def get_channel(channel_id: Id, _admin: Admin) -> ChannelOut:
    return _channel_out(_load(channel_id))


@router.patch("/channels/{channel_id}", tags=["channels"], responses=errors(403, 404))
def update_channel(channel_id: Id, body: ChannelPatch, _admin: Admin,
                   verify: bool = Query(True, description="test the logins against the service now")) -> ChannelOut:
    """Rename, enable/disable, or change settings (validated, tested, webhook registered again)."""
    row = _load(channel_id)
    values = None
    if body.config is not None:
        values = _check(row.kind, channel_store.merged_values(row, body.config), verify, channel_id=channel_id)
    channel_store.update_channel(get_engine(), channel_id, name=body.name, enabled=body.enabled, values=values)
    forget(channel_id)
    _notify_pollers(channel_id)
    return _channel_out(_load(channel_id))


class ChannelDeleted(BaseModel):
    """The channel is deleted, but the provider did not take the removal of its webhook."""

    id: int
    deleted: bool = True
    warning: str = Field(description="what failed at the provider, and what to do about it")


@router.delete("/channels/{channel_id}", status_code=204, response_model=None, tags=["channels"], responses={
    **errors(403, 404, 409), 200: {"model": ChannelDeleted, "description": "deleted; the provider's webhook "
                                   "could not be removed (the warning says why)"}})
def delete_channel(channel_id: Id, _admin: Admin) -> Response:
    """Delete a channel that has no conversations; one with history can only be disabled. Its
    webhook is then removed at the provider (Telegram's deleteWebhook): if that fails, the channel
    is deleted anyway and the answer is 200 with the provider's reason in ``warning``."""
    row = _load(channel_id)
    used = channel_store.delete_channel(get_engine(), channel_id)
    if used:
        raise HTTPException(409, f"channel {channel_id} has {used} conversations; disable it instead")
    forget(channel_id)
    try:
        channel_store.connector_for(row).webhook_teardown()
    except ConnectorError as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        warning = f"the channel is deleted, but removing its webhook at the provider failed: {reason}"
        return JSONResponse(ChannelDeleted(id=channel_id, warning=warning).model_dump())
    return Response(status_code=204)


def _notify_pollers(channel_id: int) -> None:
    row = _load(channel_id)
    if row.enabled and connector_class(row.kind).capabilities.pull:
        ring_poll(channel_id)


# -- agents and teams ---------------------------------------------------------------------------

TeamName = Annotated[str, Field(min_length=1, max_length=100)]
TeamRef = Id | TeamName  # a team's id or name (a new name makes a new team)
Language = Annotated[str, Field(min_length=1, max_length=20, description="a language code, e.g. `ca`")]
Group = Literal["email", "chat", "messaging"]
Capacities = dict[Group, Annotated[int, Field(ge=0, le=1000)]]
Skill = Annotated[str, Field(min_length=1, max_length=50, description="a free-form skill, e.g. `returns`")]
Password = Annotated[str, Field(min_length=passwords.MIN_LENGTH, max_length=passwords.MAX_LENGTH,
                                description=f"at least {passwords.MIN_LENGTH} characters; write-only")]


class AgentIn(Input):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)
    role: Literal["agent", "admin"] = "agent"
    capacity: int = Field(default=5, ge=0, le=1000)
    languages: list[Language] = Field(default_factory=list)
    teams: list[TeamRef] = Field(default_factory=list, description="team ids or names (created if new)")
    password: Password | None = Field(default=None, description="to sign in to the inbox (or send an invite link)")
    capacities: Capacities = Field(default_factory=dict, description=(
        "capacity per group of channel kinds, e.g. {\"email\": 8, \"chat\": 3, \"messaging\": 5}; a group "
        "left out takes the team default, else `capacity`"))
    skills: list[Skill] = Field(default_factory=list, max_length=50)


class AgentPatch(Input):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Literal["agent", "admin"] | None = None
    capacity: int | None = Field(default=None, ge=0, le=1000)
    languages: list[Language] | None = None
    teams: list[TeamRef] | None = None
    active: bool | None = Field(default=None, description="false: signed out, tokens and invite links revoked")
    password: Password | None = Field(default=None, description="a new password; the agent's sessions end")
    locale: Locale | None = Field(default=None, description="the inbox's language for the agent")
    capacities: Capacities | None = Field(default=None, description="replaces the map; {} clears it")
    skills: list[Skill] | None = Field(default=None, max_length=50)


class Presence(Input):
    """The body is ``{"status": ...}``; any other key is refused by name."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"status": "online"}]})

    status: Literal["online", "away", "offline"] = Field(description="the agent's presence")


def agent_out(agent_id: int) -> AgentOut:
    [(row, langs, teams)] = agent_store.describe(get_engine(), [agent_id])
    return _as_out(row, langs, teams)


def _as_out(row: Any, langs: list[str], teams: list[int]) -> AgentOut:
    return AgentOut(id=row.id, name=row.name, email=row.email, role=row.role, presence=row.presence,
                    capacity=row.capacity, active_conversations=row.active_count, languages=langs, teams=teams,
                    active=row.active, last_assigned_at=row.last_assigned_at, locale=row.locale,
                    last_seen_at=row.last_seen_at, capacities=row.capacities or {}, skills=row.skills or [])


@router.post("/agents", status_code=201, tags=["agents"], responses=errors(403, 409))
def create_agent(body: AgentIn, _admin: Admin) -> AgentCreated:
    """Create an agent; the answer carries their API token, shown this once."""
    try:
        agent_id, token = agent_store.create_agent(
            get_engine(), name=body.name, email=body.email, role=body.role, capacity=body.capacity,
            languages=body.languages, team_ids=body.teams, password=body.password,
            capacities=dict(body.capacities), skills=body.skills,
        )
    except LookupError as exc:
        raise HTTPException(422, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    return AgentCreated(**agent_out(agent_id).model_dump(), token=token)


@router.get("/agents", tags=["agents"])
def list_agents(_agent: CurrentAgent) -> AgentList:
    return AgentList(items=[_as_out(*found) for found in agent_store.describe(get_engine())])


@router.get("/me", tags=["agents"])
def me(agent: CurrentAgent) -> AgentOut:
    return agent_out(agent.id)


@router.get("/agents/{agent_id}", tags=["agents"], responses=errors(404))
def get_agent(agent_id: Id, _agent: CurrentAgent) -> AgentOut:
    if agent_store.find(get_engine(), agent_id) is None:
        raise HTTPException(404, f"no agent {agent_id}")
    return agent_out(agent_id)


@router.patch("/agents/{agent_id}", tags=["agents"], responses=errors(403, 404, 409, 422))
def update_agent(agent_id: Id, body: AgentPatch, _admin: Admin) -> AgentOut:
    """Change an agent; more capacity (or being active again) pulls waiting conversations."""
    try:
        values = body.model_dump(exclude_none=True, exclude={"languages", "teams", "password"})
        if "capacities" in values:
            values["capacities"] = values["capacities"] or None
        if "skills" in values:
            values["skills"] = sorted(set(values["skills"])) or None
        found = agent_store.update_agent(
            get_engine(), agent_id, values,
            languages=body.languages, team_refs=body.teams, password=body.password,
        )
    except LookupError as exc:
        raise HTTPException(422, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    if not found:
        raise HTTPException(404, f"no agent {agent_id}")
    ring_pull(agent_id)
    return agent_out(agent_id)


class InviteLink(BaseModel):
    url: str = Field(description="the one-time link (shown once) where the agent sets their password")
    expires_at: datetime


class TokenOut(BaseModel):
    token: str = Field(description="the agent's new API token, shown once")


@router.post("/agents/{agent_id}/invite", status_code=201, tags=["agents"], responses=errors(403, 404, 409))
def invite_agent(agent_id: Id, admin: Admin) -> InviteLink:
    """A one-time link for the agent to set their password: an invitation, or a reset. Their
    earlier links, password and sessions end now (their API tokens stay)."""
    try:
        made = invite_store.create(get_engine(), agent_id, by=admin.id)
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    if made is None:
        raise HTTPException(404, f"no agent {agent_id}")
    return InviteLink(url=f"{get_settings().public_url.rstrip('/')}/invite/{made.token}", expires_at=made.expires_at)


@router.post("/agents/{agent_id}/token", status_code=201, tags=["agents"], responses=errors(403, 404))
def new_agent_token(agent_id: Id, _admin: Admin) -> TokenOut:
    """A new API token for an active agent (an integration's, or after one was revoked)."""
    token = agent_store.issue_token(get_engine(), agent_id)
    if token is None:
        raise HTTPException(404, f"no active agent {agent_id}")
    return TokenOut(token=token)


@router.put("/agents/{agent_id}/presence", tags=["agents"], responses=errors(403, 404))
def set_presence(agent_id: Id, body: Presence, agent: CurrentAgent) -> PresenceOut:
    """Agents set their own presence; admins anyone's. Body: ``{"status": "online"|"away"|"offline"}``.
    Coming online pulls waiting conversations."""
    if agent.id != agent_id and agent.role != "admin":
        raise HTTPException(403, "agents set only their own presence")
    engine = get_engine()
    if agent_store.find(engine, agent_id) is None:
        raise HTTPException(404, f"no agent {agent_id}")
    if agent_store.set_presence(engine, agent_id, body.status):
        ring_pull(agent_id)
    return PresenceOut(id=agent_id, status=body.status)


class TeamIn(Input):
    name: TeamName


class TeamPatch(Input):
    """A team's name and routing settings; what is left out stays."""

    name: TeamName | None = None
    policy: str | None = Field(default=None, description=f"one of {', '.join(POLICIES)}")
    capacities: Capacities | None = Field(default=None, description="the members' default per group; {} clears")
    skill_wait_seconds: int | None = Field(default=None, ge=0, le=7 * 86400)
    sticky_seconds: int | None = Field(default=None, ge=0, le=365 * 86400)
    return_on_away: bool | None = None
    hours: dict[str, Any] | None = Field(default=None, description=(
        'business hours: {"timezone", "week": {"mon": [["09:00", "18:00"]], ...}, "country", "subdivision", '
        '"closed": ["YYYY-MM-DD"]}; null: the shop\'s default'))
    reassign_after: float | None = Field(default=None, gt=0, le=30 * 86400, description=(
        "seconds of business time an assignee may leave a waiting customer unanswered before the "
        "conversation goes back to the queue; null: never"))

    @field_validator("policy")
    @classmethod
    def _policy(cls, value: str | None) -> str | None:
        if value is not None and value not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}")
        return value


def team_out(row: Any) -> TeamOut:
    return TeamOut(id=row.id, name=row.name, policy=row.policy or DEFAULT_POLICY, capacities=row.capacities or {},
                   skill_wait_seconds=SKILL_WAIT_SECONDS if row.skill_wait_seconds is None else row.skill_wait_seconds,
                   sticky_seconds=STICKY_SECONDS if row.sticky_seconds is None else row.sticky_seconds,
                   return_on_away=bool(row.return_on_away), hours=row.hours, reassign_after=row.reassign_after)


@router.post("/teams", status_code=201, tags=["agents"], responses=errors(403, 409))
def create_team(body: TeamIn, _admin: Admin) -> TeamOut:
    try:
        team_id = agent_store.create_team(get_engine(), body.name)
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    return team_out(team_store.get_team(get_engine(), team_id))


@router.get("/teams", tags=["agents"])
def list_teams(_agent: CurrentAgent) -> TeamList:
    return TeamList(items=[team_out(r) for r in agent_store.list_teams(get_engine())])


@router.get("/teams/{team_id}", tags=["agents"], responses=errors(404))
def get_team(team_id: Id, _agent: CurrentAgent) -> TeamOut:
    row = team_store.get_team(get_engine(), team_id)
    if row is None:
        raise HTTPException(404, f"no team {team_id}")
    return team_out(row)


@router.patch("/teams/{team_id}", tags=["agents"], responses=errors(403, 404, 409))
def update_team(team_id: Id, body: TeamPatch, _admin: Admin) -> TeamOut:
    """Rename a team or change its routing settings, business hours or reassignment time (fields
    left out stay). More capacity pulls waiting conversations for its members."""
    engine = get_engine()
    settings = body.model_dump(exclude_unset=True, exclude={"name"})
    if settings.get("hours") is not None:
        try:
            settings["hours"] = hours_rule.dump(hours_rule.parse(settings["hours"]))
        except ValueError as exc:
            raise HTTPException(422, f"hours: {exc}") from None
    if "capacities" in settings:
        settings["capacities"] = settings["capacities"] or None
    try:
        found = team_store.update_team(engine, team_id, body.name, settings)
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    if not found:
        raise HTTPException(404, f"no team {team_id}")
    if "capacities" in settings:
        for agent_id in team_store.members(engine, team_id):
            ring_pull(agent_id)
    return team_out(team_store.get_team(engine, team_id))


@router.delete("/teams/{team_id}", status_code=204, tags=["agents"], responses=errors(403, 404, 409))
def delete_team(team_id: Id, _admin: Admin) -> Response:
    """Delete a team (its agents stay, without it); one that conversations belong to is refused."""
    used = team_store.delete_team(get_engine(), team_id)
    if used is None:
        raise HTTPException(404, f"no team {team_id}")
    if used:
        raise HTTPException(409, f"team {team_id} has {used} conversations; it cannot be deleted")
    return Response(status_code=204)


# -- failed jobs --------------------------------------------------------------------------------


@router.get("/jobs/failed", tags=["admin"], responses=ADMIN_ONLY)
def failed_jobs(_admin: Admin, limit: int = Query(100, ge=1, le=1000)) -> FailedJobList:
    """Work that stopped after its attempts ran out, with its last error."""
    return FailedJobList.model_validate({"items": failed_job_rows(get_engine(), limit)})
