"""Agents, teams and API tokens."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update

from store.crypto import token_hash
from store.models import utcnow
from store.sql import agent_languages, agent_teams, agents, tokens

a = agents.c


def new_token(conn: Connection, agent_id: int) -> str:
    """Issue an API token for an agent; only its hash is kept, the token is shown once."""
    token = "od_" + secrets.token_urlsafe(32)
    conn.execute(tokens.insert().values(agent_id=agent_id, token_hash=token_hash(token), created_at=utcnow()))
    return token


def create_agent(
    engine: Engine,
    *,
    name: str,
    email: str,
    role: str = "agent",
    capacity: int = 5,
    languages: Iterable[str] = (),
    team_ids: Iterable[int] = (),
    presence: str = "offline",
) -> tuple[int, str]:
    """Create an agent and their first token. Raises ValueError if the email is taken."""
    with engine.begin() as conn:
        if conn.execute(select(a.id).where(a.email == email.lower())).first():
            raise ValueError(f"an agent with email {email} exists")
        agent_id = conn.execute(
            agents.insert()
            .values(name=name, email=email.lower(), role=role, capacity=capacity, presence=presence,
                    active_count=0, active=True, created_at=utcnow())
            .returning(a.id)
        ).scalar_one()
        set_skills(conn, agent_id, languages=languages, team_ids=team_ids)
        return agent_id, new_token(conn, agent_id)


def set_skills(
    conn: Connection, agent_id: int, *, languages: Iterable[str] | None = None, team_ids: Iterable[int] | None = None
) -> None:
    if languages is not None:
        conn.execute(delete(agent_languages).where(agent_languages.c.agent_id == agent_id))
        for lang in sorted({code.lower() for code in languages}):
            conn.execute(agent_languages.insert().values(agent_id=agent_id, language=lang))
    if team_ids is not None:
        conn.execute(delete(agent_teams).where(agent_teams.c.agent_id == agent_id))
        for team_id in sorted(set(team_ids)):
            conn.execute(agent_teams.insert().values(agent_id=agent_id, team_id=team_id))


def skills(conn: Connection, agent_id: int) -> tuple[list[str], list[int]]:
    langs = conn.execute(
        select(agent_languages.c.language)
        .where(agent_languages.c.agent_id == agent_id)
        .order_by(agent_languages.c.language)
    ).scalars().all()
    teams = conn.execute(
        select(agent_teams.c.team_id).where(agent_teams.c.agent_id == agent_id).order_by(agent_teams.c.team_id)
    ).scalars().all()
    return list(langs), list(teams)


def set_presence(engine: Engine, agent_id: int, presence: str) -> bool:
    """Returns whether the agent may now take more conversations (the caller pulls the queue)."""
    with engine.begin() as conn:
        conn.execute(update(agents).where(a.id == agent_id).values(presence=presence))
    return presence == "online"


def admin_token(engine: Engine) -> str:
    """A new token for the first admin, creating an "Administrator" agent when there is none."""
    with engine.begin() as conn:
        admin_id = conn.execute(
            select(a.id).where(a.role == "admin", a.active.is_(True)).order_by(a.id).limit(1)
        ).scalar()
        if admin_id is None:
            admin_id = conn.execute(
                agents.insert()
                .values(name="Administrator", email="admin@localhost", role="admin", capacity=0,
                        presence="offline", active_count=0, active=True, created_at=utcnow())
                .returning(a.id)
            ).scalar_one()
        return new_token(conn, admin_id)


def get(conn: Connection, agent_id: int) -> Any:
    return conn.execute(select(agents).where(a.id == agent_id)).first()
