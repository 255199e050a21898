"""Renaming, configuring and deleting teams (created and listed with the agents, in :mod:`store.agents`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, delete, func, select, update

from store.models import MAX_ID
from store.sql import agent_teams, conversations, teams


def get_team(engine: Engine, team_id: int) -> Any:
    """A team's row (name and routing settings); None when there is no such team."""
    if not 0 < team_id <= MAX_ID:
        return None
    with engine.connect() as conn:
        return conn.execute(select(teams).where(teams.c.id == team_id)).first()


def members(engine: Engine, team_id: int) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(select(agent_teams.c.agent_id).where(agent_teams.c.team_id == team_id)
                                 .order_by(agent_teams.c.agent_id)).scalars())


# The settings a team may change: routing, business hours, reassignment (router/ reads them;
# see store.models.Team).
SETTINGS = ("policy", "capacities", "skill_wait_seconds", "sticky_seconds", "return_on_away", "hours",
            "reassign_after")


def update_team(engine: Engine, team_id: int, name: str | None, settings: dict[str, Any]) -> bool:
    """Rename a team (``name``, unless None) and change its routing ``settings`` (keys of
    ``SETTINGS``; None resets one to the router's default, except ``return_on_away``); False when
    there is no such team, ValueError when another team has the name."""
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise ValueError(f"not a team setting: {', '.join(sorted(unknown))}")
    if name is not None and not rename_team(engine, team_id, name):
        return False
    if not 0 < team_id <= MAX_ID:
        return False
    with engine.begin() as conn:
        values = {**settings}
        if values.get("return_on_away", False) is None:
            values["return_on_away"] = False
        if values:
            return bool(conn.execute(update(teams).where(teams.c.id == team_id).values(**values)).rowcount)
        return conn.execute(select(teams.c.id).where(teams.c.id == team_id)).first() is not None


def rename_team(engine: Engine, team_id: int, name: str) -> bool:
    """Rename a team; False when there is no such team, ValueError when another team has the name."""
    if not 0 < team_id <= MAX_ID:
        return False
    with engine.begin() as conn:
        if conn.execute(select(teams.c.id).where(teams.c.id == team_id)).first() is None:
            return False
        if conn.execute(select(teams.c.id).where(teams.c.name == name, teams.c.id != team_id)).first():
            raise ValueError(f"team {name!r} exists")
        conn.execute(update(teams).where(teams.c.id == team_id).values(name=name))
    return True


def delete_team(engine: Engine, team_id: int) -> int | None:
    """Delete a team and its memberships: None when there is no such team. A team that
    conversations belong to is kept (deleting it would change who may see them): the answer is
    then their number; 0 when deleted."""
    if not 0 < team_id <= MAX_ID:
        return None
    with engine.begin() as conn:
        if conn.execute(select(teams.c.id).where(teams.c.id == team_id)).first() is None:
            return None
        used = conn.execute(select(func.count()).select_from(conversations)
                            .where(conversations.c.team_id == team_id)).scalar_one()
        if used:
            return int(used)
        conn.execute(delete(agent_teams).where(agent_teams.c.team_id == team_id))
        conn.execute(delete(teams).where(teams.c.id == team_id))
    return 0
