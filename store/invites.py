"""One-time links with which an agent sets their password: an admin's invitation, or a reset.

The link carries a random token; the store keeps its SHA-256 digest. A link works once and until
it expires (``invite_hours``). Making a link is a reset: the agent's earlier unused links, their
password and their sessions end with it (their API tokens stay, for integrations).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, select, update

from store import models, passwords, sessions
from store.crypto import token_hash
from store.models import MAX_ID, utcnow
from store.settings import get_settings
from store.sql import agents

invites: Table = models.Invite.__table__  # type: ignore[assignment]
i = invites.c


class InviteGone(Exception):
    """The link was used already, or has expired (HTTP 410)."""


@dataclass(frozen=True)
class NewInvite:
    token: str  # shown once, in the link
    expires_at: datetime


def create(engine: Engine, agent_id: int, *, by: int | None = None) -> NewInvite | None:
    """A new link for an active agent (None when there is no such agent; ValueError when they
    are disabled). Their earlier unused links, password and sessions end now."""
    if not 0 < agent_id <= MAX_ID:
        return None
    now = utcnow()
    token = secrets.token_urlsafe(32)
    expires = now + timedelta(hours=get_settings().invite_hours)
    with engine.begin() as conn:
        agent = conn.execute(select(agents.c.active).where(agents.c.id == agent_id)).first()
        if agent is None:
            return None
        if not agent.active:
            raise ValueError(f"agent {agent_id} is disabled; enable them first")
        void(conn, agent_id)
        sessions.revoke_all(conn, agent_id)
        conn.execute(update(agents).where(agents.c.id == agent_id).values(password_hash=None))
        conn.execute(invites.insert().values(token_hash=token_hash(token), agent_id=agent_id, created_by=by,
                                             created_at=now, expires_at=expires))
    return NewInvite(token, expires)


def void(conn: Connection, agent_id: int) -> None:
    """Delete an agent's unused links (a new one is made, or the agent is disabled)."""
    conn.execute(delete(invites).where(i.agent_id == agent_id, i.used_at.is_(None)))


def look(engine: Engine, token: str) -> Any:
    """The agent (id, name, email) a usable link is for, with its ``expires_at``; None for a link
    that never existed; :class:`InviteGone` for a used or expired one."""
    with engine.connect() as conn:
        row = conn.execute(
            select(agents.c.id, agents.c.name, agents.c.email, i.expires_at, i.used_at)
            .join(invites, i.agent_id == agents.c.id).where(i.token_hash == token_hash(token))
        ).first()
    if row is not None and (row.used_at is not None or row.expires_at <= utcnow()):
        raise InviteGone("this link was used already or has expired; ask an admin for a new one")
    return row


def accept(engine: Engine, token: str, password: str) -> sessions.Session | None:
    """Set the password of the link's agent, use the link up, and sign them in: the new session.
    None for a link that never existed; :class:`InviteGone` for a used or expired one;
    ValueError for a password too short or long. Of two uses at once, one wins."""
    hashed = passwords.hash_password(password)  # slow, and may refuse: before the lock
    if look(engine, token) is None:
        return None
    now = utcnow()
    with engine.begin() as conn:
        # Used up in the statement that checks it: a second use finds nothing to update.
        agent_id = conn.execute(
            update(invites).where(i.token_hash == token_hash(token), i.used_at.is_(None), i.expires_at > now)
            .values(used_at=now).returning(i.agent_id)
        ).scalar()
        if agent_id is None:
            raise InviteGone("this link was used already or has expired; ask an admin for a new one")
        conn.execute(update(agents).where(agents.c.id == agent_id).values(password_hash=hashed))
        sessions.revoke_all(conn, agent_id)
        agent = conn.execute(select(agents).where(agents.c.id == agent_id)).one()
        return sessions.start(conn, agent)
