"""Business hours, service levels and their report (admins): the shop's default hours, the SLA
targets, ``GET /reports/sla``, and whether a team is open now. A team's own hours and
reassignment time are set with ``PATCH /teams/{id}`` (web.api_admin)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from router import hours as hours_rule
from router import sla as sla_rule
from router.opening import next_opening, open_now
from store import sla as sla_store
from store import teams as team_store
from store.db import get_engine
from store.models import utcnow
from web.deps import Admin, CurrentAgent
from web.schemas import Id, Input, errors

router = APIRouter(responses=errors(401, 403, 422), tags=["service levels"])


class HoursIn(Input):
    hours: dict[str, Any] | None = Field(description=(
        'business hours: {"timezone", "week": {"mon": [["09:00", "18:00"]], ...}, "country", "subdivision", '
        '"closed": ["YYYY-MM-DD"]}; null: always open'))


class SlaIn(Input):
    near: float = Field(default=sla_rule.DEFAULT_NEAR, gt=0, lt=1, description="near-breach at this fraction")
    targets: dict[str, dict[str, float]] = Field(default_factory=dict, description=(
        'seconds of business time by channel kind or group (email, chat, messaging), optionally '
        '"kind:priority": {"whatsapp": {"first": 3600, "next": 3600}}'))


class SlaRow(BaseModel):
    channel_kind: str
    priority: int
    met: int
    breached: int
    near_breach: int
    open: int
    unanswered: int
    median_first_response_seconds: float | None


class SlaReport(BaseModel):
    start: datetime
    end: datetime
    items: list[SlaRow]


class OpenOut(BaseModel):
    team_id: int | None
    open: bool
    next_open: datetime | None


@router.get("/settings/hours")
def get_shop_hours(_admin: Admin) -> HoursIn:
    with get_engine().connect() as conn:
        return HoursIn(hours=sla_store.config(conn, "hours"))


@router.put("/settings/hours")
def set_shop_hours(body: HoursIn, _admin: Admin) -> HoursIn:
    """The shop's default business hours (teams without their own use them)."""
    try:
        value = hours_rule.dump(hours_rule.parse(body.hours))
    except ValueError as exc:
        raise HTTPException(422, f"hours: {exc}") from None
    sla_store.set_config(get_engine(), "hours", value)
    return HoursIn(hours=value)


@router.get("/settings/sla")
def get_sla(_admin: Admin) -> SlaIn:
    with get_engine().connect() as conn:
        return SlaIn(**sla_rule.validate(sla_store.config(conn, "sla")))


@router.put("/settings/sla")
def set_sla(body: SlaIn, _admin: Admin) -> SlaIn:
    """Response targets; conversations already waiting keep the due times they were given."""
    try:
        value = sla_rule.validate(body.model_dump())
    except ValueError as exc:
        raise HTTPException(422, f"sla: {exc}") from None
    sla_store.set_config(get_engine(), "sla", value)
    return SlaIn(**value)


@router.get("/reports/sla")
def sla_report(_admin: Admin, start: datetime | None = Query(None, description="from (UTC); default 7 days ago"),
               end: datetime | None = Query(None, description="until (UTC, excluded); default now")) -> SlaReport:
    """Response targets of the waits that started in the period, by channel kind and priority."""
    now = utcnow()
    end = _naive(end) if end is not None else now
    start = _naive(start) if start is not None else end - timedelta(days=7)
    if start >= end:
        raise HTTPException(422, "start must be before end")
    rows = sla_rule.report(sla_store.clocks_between(get_engine(), start, end), now)
    return SlaReport(start=start, end=end, items=[SlaRow(**row) for row in rows])


@router.get("/teams/{team_id}/open")
def team_open(team_id: Id, _agent: CurrentAgent) -> OpenOut:
    """Whether the team answers now, and when it opens next."""
    if team_store.get_team(get_engine(), team_id) is None:
        raise HTTPException(404, f"no team {team_id}")
    return OpenOut(team_id=team_id, open=open_now(get_engine(), team_id), next_open=next_opening(get_engine(), team_id))


def _naive(at: datetime) -> datetime:
    """A time as the store keeps it: naive UTC."""
    if at.tzinfo is None:
        return at
    return at.astimezone(UTC).replace(tzinfo=None)
