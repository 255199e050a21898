"""Request dependencies: who is calling (bearer token -> agent), and what they may see.

The bearer scheme is declared through ``HTTPBearer`` so that the OpenAPI document says how to
authenticate (``/docs`` shows an "Authorize" button); the checks and their messages are ours.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from router.access import Viewer, Visible, may_see
from store import agents as agent_store
from store.db import get_engine

bearer = HTTPBearer(auto_error=False, description="an API token: `omnidesk token create --admin`, or an "
                                                  "agent's token from `POST /agents`")


def engine() -> Engine:
    return get_engine()


def current_agent(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Any:
    """The active agent whose token the request carries; 401 otherwise."""
    if credentials is None or not credentials.credentials.strip():
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    agent = agent_store.by_token(get_engine(), credentials.credentials.strip())
    if agent is None:
        raise HTTPException(401, "invalid or revoked token", headers={"WWW-Authenticate": "Bearer"})
    return agent


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
