"""Agents signing in with email and password: the check, its rate limit, and the sessions.

A session id is a random token that only the browser's cookie holds; the store keeps its SHA-256
digest (as for API tokens), so a leaked database signs nobody in. Each session has a CSRF token,
which a browser must send back on every cookie-authenticated write.

The rate limit is kept in the database (``sign_in_failures``), so it holds across web processes:
an attempt is refused with :class:`RateLimited` while its email, or its client address, has
``sign_in_max_failures`` (``..._per_ip``) refusals within ``sign_in_window`` seconds. An attempt is
counted before its password is checked (and forgotten when it succeeds), so a burst of parallel
guesses cannot all pass the count while the slow hashes run.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, select, update

from store import models, passwords
from store.crypto import token_hash
from store.models import utcnow
from store.settings import get_settings
from store.sql import agents

sessions: Table = models.AgentSession.__table__  # type: ignore[assignment]
failures: Table = models.SignInFailure.__table__  # type: ignore[assignment]
s, f = sessions.c, failures.c
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often per session


class RateLimited(Exception):
    """Too many refused sign-ins for this email or client address; try again in ``retry_after`` s."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Session:
    """A live session: its agent (the ``agents`` row), CSRF token and end. ``token`` (the cookie's
    value) is set only when the session was just made."""

    id: int
    agent: Any
    csrf_token: str
    expires_at: datetime
    token: str | None = None


def sign_in(engine: Engine, email: str, password: str, ip: str) -> Session | None:
    """A new session when ``password`` is the password of the active agent with ``email``; None
    (and the attempt counted) otherwise, taking as long whether or not the email exists.
    Raises :class:`RateLimited` before checking anything while the limit is reached."""
    email, ip, now = email.strip().lower()[:320], ip[:64], utcnow()
    with engine.begin() as conn:
        wait = retry_after(conn, email, ip, now)
        if wait:
            raise RateLimited(wait)
        conn.execute(failures.insert().values(email=email, ip=ip, created_at=now))
        agent = conn.execute(select(agents).where(agents.c.email == email)).first()
    stored = agent.password_hash if agent is not None and agent.active else None
    if not passwords.verify(stored, password):
        return None
    with engine.begin() as conn:
        conn.execute(delete(failures).where(f.email == email))  # the owner: their count starts again
        if passwords.needs_rehash(stored):  # type: ignore[arg-type]
            conn.execute(update(agents).where(agents.c.id == agent.id)
                         .values(password_hash=passwords.hasher().hash(password)))
        return start(conn, agent)


def retry_after(conn: Connection, email: str, ip: str, now: datetime) -> int:
    """Seconds until this email and this address may try again; 0 when they may now. Also
    deletes the refusals that have left the window."""
    config = get_settings()
    window = timedelta(seconds=config.sign_in_window)
    conn.execute(delete(failures).where(f.created_at <= now - window))
    wait = 0.0
    for column, value, limit in ((f.email, email, config.sign_in_max_failures),
                                 (f.ip, ip, config.sign_in_max_failures_per_ip)):
        # The limit-th latest refusal: once it leaves the window, fewer than the limit remain.
        nth = conn.execute(select(f.created_at).where(column == value, f.created_at > now - window)
                           .order_by(f.created_at.desc()).offset(max(limit, 1) - 1).limit(1)).scalar()
        if nth is not None:
            wait = max(wait, (nth + window - now).total_seconds())
    return math.ceil(wait) if wait > 0 else 0


def start(conn: Connection, agent: Any) -> Session:
    """A new session for ``agent`` (an ``agents`` row); its token is in the answer, only its
    digest in the store. The agent's sessions that have ended are deleted."""
    now, config = utcnow(), get_settings()
    conn.execute(delete(sessions).where(s.agent_id == agent.id, s.expires_at <= now))
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = now + timedelta(hours=config.session_hours)
    session_id = conn.execute(sessions.insert().values(
        token_hash=token_hash(token), agent_id=agent.id, csrf_token=csrf, created_at=now, last_seen_at=now,
        expires_at=expires).returning(s.id)).scalar_one()
    return Session(session_id, agent, csrf, expires, token)


def current(engine: Engine, token: str) -> Session | None:
    """The live session whose cookie this is, with its active agent; None when it never existed,
    was signed out or revoked, has expired, has been idle too long, or its agent is disabled."""
    now = utcnow()
    idle = timedelta(hours=get_settings().session_idle_hours)
    with engine.connect() as conn:
        # The agent's columns, and the session's under names the agents table does not use.
        row = conn.execute(
            select(agents, s.id.label("session_id"), s.csrf_token.label("session_csrf"),
                   s.expires_at.label("session_expires_at"), s.last_seen_at.label("session_seen_at"))
            .join(sessions, s.agent_id == agents.c.id)
            .where(s.token_hash == token_hash(token), s.expires_at > now, s.last_seen_at > now - idle,
                   agents.c.active.is_(True))
        ).first()
    if row is None:
        return None
    if now - row.session_seen_at >= TOUCH_EVERY:
        with engine.begin() as conn:
            conn.execute(update(sessions).where(s.id == row.session_id).values(last_seen_at=now))
    return Session(row.session_id, row, row.session_csrf, row.session_expires_at)


def sign_out(engine: Engine, token: str) -> bool:
    """End the session whose cookie this is; whether there was one."""
    with engine.begin() as conn:
        return conn.execute(delete(sessions).where(s.token_hash == token_hash(token))).rowcount > 0


def revoke_all(conn: Connection, agent_id: int, *, keep: str | None = None) -> int:
    """End every session of an agent (disabled, or their password reset), but the one whose cookie
    is ``keep`` (the agent's own, when they changed their password); how many ended."""
    query = delete(sessions).where(s.agent_id == agent_id)
    if keep is not None:
        query = query.where(s.token_hash != token_hash(keep))
    return conn.execute(query).rowcount
