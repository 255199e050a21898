"""Request dependencies: who is calling (a bearer token or the inbox's session cookie -> agent),
and what they may see.

The bearer scheme is declared through ``HTTPBearer`` so that the OpenAPI document says how to
authenticate (``/docs`` shows an "Authorize" button); the checks and their messages are ours. The
cookie is read as it is, not declared as a second scheme: it is the inbox's own, set by
``POST /api/v1/session``, and a declared cookie would make the API's fuzzers forge cookie headers
instead of calling the operations.

A bearer token, when sent, decides alone. A session cookie is sent by the browser on its own, also
on requests another site makes it send, so every write with it (any method but GET, HEAD and
OPTIONS) must also carry the session's CSRF token in ``X-CSRF-Token``, which only our own pages
can read (from ``POST`` or ``GET /api/v1/session``): without it, 403. Bearer calls need no CSRF
token, as no browser adds an ``Authorization`` header by itself.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from router.access import Viewer, Visible, may_see
from store import agents as agent_store
from store import sessions as session_store
from store.db import get_engine

SESSION_COOKIE = "omnidesk_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer = HTTPBearer(auto_error=False, description="an API token: `omnidesk token create --admin`, or an "
                                                  "agent's token from `POST /agents`. Browsers use the session "
                                                  f"cookie of `POST /api/v1/session` instead (writes with it also "
                                                  f"send the session's `csrf_token` in `{CSRF_HEADER}`)")


def session_cookie(request: Request) -> str | None:
    """The inbox's session cookie, if the browser sent one."""
    return request.cookies.get(SESSION_COOKIE) or None


def engine() -> Engine:
    return get_engine()


def current_agent(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    session_id: Annotated[str | None, Depends(session_cookie)],
) -> Any:
    """The active agent whose bearer token, or else whose session cookie, the request carries;
    401 otherwise; 403 for a write with the cookie but without its CSRF token."""
    if credentials is not None and credentials.credentials.strip():
        agent = agent_store.by_token(get_engine(), credentials.credentials.strip())
        if agent is None:
            raise HTTPException(401, "invalid or revoked token", headers={"WWW-Authenticate": "Bearer"})
        return agent
    if session_id:
        return current_session(request, session_id).agent
    raise HTTPException(401, "missing bearer token or session cookie", headers={"WWW-Authenticate": "Bearer"})


def current_session(request: Request, session_id: str) -> session_store.Session:
    """The live session of this cookie, its CSRF token checked on writes; 401 when it has ended
    (signed out, expired, revoked, its agent disabled), 403 without the CSRF proof."""
    session = session_store.current(get_engine(), session_id)
    if session is None:
        raise HTTPException(401, "your session has ended; sign in again", headers={"WWW-Authenticate": "Bearer"})
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
            raise HTTPException(403, f"missing or wrong {CSRF_HEADER} header (the csrf_token of your session)")
    return session


def admin(agent: Annotated[Any, Depends(current_agent)]) -> Any:
    if agent.role != "admin":
        raise HTTPException(403, "this needs an admin")
    return agent


def viewer(agent: Any) -> Viewer:
    """The agent as the visibility rule sees them (their teams read now)."""
    teams = () if agent.role == "admin" else agent_store.team_ids(get_engine(), agent.id)
    return Viewer.of(agent.id, agent.role, teams)


def check_visible(agent: Any, conversation: Visible | None, missing: str) -> None:
    """404 with ``missing`` when the conversation does not exist or the agent may not see it:
    the same answer for both, so ids reveal nothing."""
    if conversation is None or not may_see(viewer(agent), conversation):
        raise HTTPException(404, missing)


CurrentAgent = Annotated[Any, Depends(current_agent)]
Admin = Annotated[Any, Depends(admin)]
__all__ = ["Admin", "CurrentAgent", "check_visible", "engine", "viewer"]
