"""Agents, teams and API tokens."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update

from store import invites, passwords, sessions
from store.crypto import token_hash
from store.dialect import for_update
from store.events import append, event
from store.models import MAX_ID, utcnow
from store.sql import agent_languages, agent_teams, agents, teams, tokens

a = agents.c
LOCALES = ("en", "es", "ca", "pt", "pl")  # the inbox's languages; agents.locale is one of them


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
    team_ids: Iterable[int | str] = (),
    presence: str = "offline",
    password: str | None = None,
    capacities: dict[str, int] | None = None,
    skills: Iterable[str] | None = None,
) -> tuple[int, str]:
    """Create an agent and their first token; with ``password`` they can sign in at once.
    ``capacities``: their own capacity per group of channel kinds (over their teams' defaults);
    ``skills``: free-form skills that conversations may ask for.
    ``team_ids``: ids or names (a new name makes a new team). Raises ValueError if the email is
    taken or the password too short or long, LookupError for an unknown team id."""
    hashed = passwords.hash_password(password) if password is not None else None  # slow: before the lock
    with engine.begin() as conn:
        if conn.execute(select(a.id).where(a.email == email.lower())).first():
            raise ValueError(f"an agent with email {email} exists")
        agent_id = conn.execute(
            agents.insert()
            .values(name=name, email=email.lower(), role=role, capacity=capacity, presence=presence,
                    active_count=0, active=True, created_at=utcnow(), password_hash=hashed,
                    capacities=capacities or None, skills=sorted(set(skills)) if skills else None)
            .returning(a.id)
        ).scalar_one()
        set_skills(conn, agent_id, languages=languages, team_ids=resolve_teams(conn, team_ids))
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
        if conn.execute(update(agents).where(a.id == agent_id).values(presence=presence)).rowcount:
            append(conn, [event("agent.presence", agent_id=agent_id, presence=presence)])
    return presence == "online"


def heartbeat(engine: Engine, agent_id: int, presence: str | None = None) -> bool:
    """The agent's inbox is open: ``last_seen_at`` is now; with ``presence``, set it too (its
    ``agent.presence`` event only when it changes: a heartbeat comes every few seconds). Returns
    whether the agent just came online (the caller pulls the queue)."""
    now = utcnow()
    with engine.begin() as conn:
        changed = False
        if presence is not None:
            changed = conn.execute(update(agents).where(a.id == agent_id, a.presence != presence)
                                   .values(presence=presence, last_seen_at=now)).rowcount > 0
        if not changed:
            conn.execute(update(agents).where(a.id == agent_id).values(last_seen_at=now))
        if changed:
            append(conn, [event("agent.presence", agent_id=agent_id, presence=presence)])
    return changed and presence == "online"


Stale = Callable[[str, datetime | None, datetime], bool]  # (presence, last seen, now) -> away now?


def away_if_stale(engine: Engine, stale: Stale) -> list[int]:
    """Set ``away``, with its ``agent.presence`` event, every online agent for whom ``stale``
    (the router's decision, ``router.presence``) says so; returns their ids. A heartbeat that
    arrives meanwhile wins: the write is made only while last_seen_at is still the value decided on."""
    now = utcnow()
    moved = []
    with engine.begin() as conn:
        online = conn.execute(select(a.id, a.presence, a.last_seen_at).where(a.presence == "online")).all()
        for row in online:
            if not stale(row.presence, row.last_seen_at, now):
                continue
            done = conn.execute(update(agents).where(a.id == row.id, a.presence == "online",
                                                     a.last_seen_at == row.last_seen_at).values(presence="away"))
            if done.rowcount:
                moved.append(row.id)
        append(conn, [event("agent.presence", agent_id=agent_id, presence="away") for agent_id in moved])
    return moved


def change_password(engine: Engine, agent_id: int, current: str, new: str, *, keep_session: str | None) -> bool:
    """Set a new password when ``current`` is the agent's password (False otherwise, nothing
    changed), ending their other sessions (all but the cookie ``keep_session``). ValueError for
    a new password too short or long."""
    with engine.connect() as conn:
        stored = conn.execute(select(a.password_hash).where(a.id == agent_id)).scalar()
    if not passwords.verify(stored, current):
        return False
    hashed = passwords.hash_password(new)
    with engine.begin() as conn:
        done = conn.execute(update(agents).where(a.id == agent_id, a.password_hash == stored)
                            .values(password_hash=hashed))
        if not done.rowcount:  # changed meanwhile (another tab, a reset): the current one is no more
            return False
        sessions.revoke_all(conn, agent_id, keep=keep_session)
    return True


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


def by_token(engine: Engine, token: str) -> Any:
    """The active agent whose API token this is, or None."""
    with engine.connect() as conn:
        return conn.execute(
            select(agents).join(tokens, tokens.c.agent_id == a.id)
            .where(tokens.c.token_hash == token_hash(token), a.active.is_(True))
        ).first()


def find(engine: Engine, agent_id: int, *, active: bool = False) -> Any:
    """An agent (only an active one with ``active``), or None; ids out of range name nobody."""
    if not 0 < agent_id <= MAX_ID:
        return None
    with engine.connect() as conn:
        row = get(conn, agent_id)
    return row if row is not None and (row.active or not active) else None


def team_ids(engine: Engine, agent_id: int) -> list[int]:
    with engine.connect() as conn:
        return skills(conn, agent_id)[1]


def describe(engine: Engine, agent_ids: Iterable[int] | None = None) -> list[tuple[Any, list[str], list[int]]]:
    """Agents (all, or those named) by id, each with their languages and team ids."""
    query = select(agents).order_by(a.id)
    if agent_ids is not None:
        query = query.where(a.id.in_(list(agent_ids)))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        langs: dict[int, list[str]] = {}
        for agent_id, lang in conn.execute(
            select(agent_languages.c.agent_id, agent_languages.c.language).order_by(agent_languages.c.language)
        ):
            langs.setdefault(agent_id, []).append(lang)
        member: dict[int, list[int]] = {}
        for agent_id, team_id in conn.execute(
            select(agent_teams.c.agent_id, agent_teams.c.team_id).order_by(agent_teams.c.team_id)
        ):
            member.setdefault(agent_id, []).append(team_id)
    return [(row, langs.get(row.id, []), member.get(row.id, [])) for row in rows]


def resolve_teams(conn: Connection, refs: Iterable[int | str]) -> list[int]:
    """Team ids for ids or names; a name not yet known makes a new team. LookupError for an id
    that names no team."""
    ids = []
    for ref in refs:
        if isinstance(ref, int):
            if not 0 < ref <= MAX_ID or conn.execute(select(teams.c.id).where(teams.c.id == ref)).first() is None:
                raise LookupError(f"no team {ref}")
            ids.append(ref)
        else:
            found = conn.execute(select(teams.c.id).where(teams.c.name == ref)).scalar()
            ids.append(found or conn.execute(teams.insert().values(name=ref).returning(teams.c.id)).scalar_one())
    return ids


def update_agent(
    engine: Engine, agent_id: int, values: dict[str, Any], *, languages: Iterable[str] | None = None,
    team_refs: Iterable[int | str] | None = None, password: str | None = None,
) -> bool:
    """Change an agent's name, role, capacity or ``active`` flag, languages and teams (ids or
    names), or password; False when there is no such agent. LookupError for an unknown team id,
    ValueError for a password too short or long.

    A new password ends the agent's sessions (a reset). Disabling an agent ends their sessions and
    revokes their API tokens and unused invites at once: nothing of theirs signs in any more."""
    if not 0 < agent_id <= MAX_ID:
        return False
    hashed = passwords.hash_password(password) if password is not None else None
    with engine.begin() as conn:
        if get(conn, agent_id) is None:
            return False
        if values.get("role", "admin") != "admin" or values.get("active", True) is False:
            _keep_an_admin(conn, agent_id)
        if hashed is not None:
            values = {**values, "password_hash": hashed}
            sessions.revoke_all(conn, agent_id)
        if values:
            conn.execute(update(agents).where(a.id == agent_id).values(**values))
        if values.get("active", True) is False:
            revoke_access(conn, agent_id)
        set_skills(conn, agent_id, languages=languages,
                   team_ids=resolve_teams(conn, team_refs) if team_refs is not None else None)
        if team_refs is not None or "role" in values or "active" in values:  # what they may see changed
            append(conn, [event("agent.updated", agent_id=agent_id)])
    return True


def revoke_access(conn: Connection, agent_id: int) -> None:
    """End everything that lets an agent in: sessions, API tokens, unused invite links."""
    sessions.revoke_all(conn, agent_id)
    conn.execute(delete(tokens).where(tokens.c.agent_id == agent_id))
    invites.void(conn, agent_id)


def issue_token(engine: Engine, agent_id: int) -> str | None:
    """A new API token for an active agent (shown once); None when there is no such agent."""
    if not 0 < agent_id <= MAX_ID:
        return None
    with engine.begin() as conn:
        row = get(conn, agent_id)
        return new_token(conn, agent_id) if row is not None and row.active else None


def _keep_an_admin(conn: Connection, agent_id: int) -> None:
    """Demoting or deactivating ``agent_id`` must leave another active admin, or nobody could
    manage the shop any more: ValueError. The active admins are locked, so two such changes at
    once cannot both pass."""
    admins = conn.execute(for_update(conn, select(a.id).where(a.role == "admin", a.active.is_(True))
                                     .order_by(a.id), of=agents)).scalars().all()
    if admins == [agent_id]:
        raise ValueError(f"agent {agent_id} is the last active admin; make another admin first")


def create_team(engine: Engine, name: str) -> int:
    """A new team; ValueError when the name is taken."""
    with engine.begin() as conn:
        if conn.execute(select(teams.c.id).where(teams.c.name == name)).first():
            raise ValueError(f"team {name!r} exists")
        return conn.execute(teams.insert().values(name=name).returning(teams.c.id)).scalar_one()


def list_teams(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(teams).order_by(teams.c.id)).all())


def online_agents(engine: Engine) -> list[frozenset[int]]:
    """The teams of each active agent who is online now (router.availability decides with them)."""
    with engine.connect() as conn:
        rows = conn.execute(select(a.id, agent_teams.c.team_id).outerjoin(agent_teams, agent_teams.c.agent_id == a.id)
                            .where(a.active.is_(True), a.presence == "online")).all()
    teams_of: dict[int, set[int]] = {}
    for row in rows:
        teams_of.setdefault(row.id, set())
        if row.team_id is not None:
            teams_of[row.id].add(row.team_id)
    return [frozenset(found) for found in teams_of.values()]
