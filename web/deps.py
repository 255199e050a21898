"""Request dependencies: the database, and who is calling (bearer token -> agent)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from sqlalchemy import Engine, select
from sqlmodel import Session

from store.crypto import token_hash
from store.db import get_engine
from store.models import Agent
from store.sql import agents, tokens


def engine() -> Engine:
    return get_engine()


def session() -> Iterator[Session]:
    with Session(get_engine(), expire_on_commit=False) as s:
        yield s


def current_agent(request: Request) -> Any:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    with get_engine().connect() as conn:
        agent = conn.execute(
            select(agents)
            .join(tokens, tokens.c.agent_id == agents.c.id)
            .where(tokens.c.token_hash == token_hash(token.strip()), agents.c.active.is_(True))
        ).first()
    if agent is None:
        raise HTTPException(401, "invalid or revoked token", headers={"WWW-Authenticate": "Bearer"})
    return agent


def admin(agent: Annotated[Any, Depends(current_agent)]) -> Any:
    if agent.role != "admin":
        raise HTTPException(403, "this needs an admin")
    return agent


CurrentAgent = Annotated[Any, Depends(current_agent)]
Admin = Annotated[Any, Depends(admin)]
Db = Annotated[Session, Depends(session)]
__all__ = ["Admin", "Agent", "CurrentAgent", "Db", "engine"]
