"""Whether a team (or the shop) is open: the business-hours rule (router.hours) over the hours the
store keeps, for callers that hold an id, not the hours (rules, the web chat's "nobody there")."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from router.hours import next_open, open_at
from router.sla import hours_of
from store.models import utcnow
from store.sla import hours_for


def team_hours(engine: Engine, team_id: int | None) -> object:
    """The parsed hours of ``team_id`` (its own, else the shop's; None: always open)."""
    with engine.connect() as conn:
        return hours_of(hours_for(conn, team_id))


def open_now(engine: Engine, team_id: int | None, at: datetime | None = None) -> bool:
    """Whether the team (None: the shop) answers at ``at`` (naive UTC; default now)."""
    return open_at(team_hours(engine, team_id), at or utcnow())  # type: ignore[arg-type]


def next_opening(engine: Engine, team_id: int | None, at: datetime | None = None) -> datetime | None:
    """``at`` when open, else the team's next opening (naive UTC); None if it never opens."""
    return next_open(team_hours(engine, team_id), at or utcnow())  # type: ignore[arg-type]
