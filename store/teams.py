"""Renaming and deleting teams (created and listed with the agents, in :mod:`store.agents`)."""

from __future__ import annotations

from sqlalchemy import Engine, delete, func, select, update

from store.models import MAX_ID
from store.sql import agent_teams, conversations, teams


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
