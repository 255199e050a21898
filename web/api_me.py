"""The signed-in agent's own settings: name and the inbox's language, password, and the inbox's
presence heartbeat. (``GET /me`` is with the agents, in ``web.api_admin``.)"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import ConfigDict, Field, model_validator

from store import agents as agent_store
from store import passwords
from store.db import get_engine
from web.api_admin import Password, agent_out
from web.deps import CurrentAgent, session_cookie
from web.schemas import AgentOut, Input, Locale, errors
from workers import ring_pull

router = APIRouter(tags=["me"], responses=errors(401, 403, 422))


class MePatch(Input):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    locale: Locale | None = Field(default=None, description="the inbox's language")

    @model_validator(mode="after")
    def _not_null(self) -> MePatch:
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null (leave it out to keep it)")
        return self


@router.patch("/me")
def update_me(body: MePatch, agent: CurrentAgent) -> AgentOut:
    """Change one's own name or the inbox's language (``en``, ``es``, ``ca``, ``pt``, ``pl``)."""
    changes = body.model_dump(exclude_unset=True)
    if changes:
        agent_store.update_agent(get_engine(), agent.id, changes)
    return agent_out(agent.id)


class PasswordChange(Input):
    model_config = ConfigDict(extra="forbid")

    current: str = Field(max_length=passwords.MAX_LENGTH, description="the password now")
    new: Password


@router.put("/me/password", status_code=204)
def change_password(body: PasswordChange, agent: CurrentAgent,
                    cookie: Annotated[str | None, Depends(session_cookie)]) -> Response:
    """Set a new password, proving the current one (403 when wrong). The agent's other sessions
    end; the one making the change (its cookie) stays signed in."""
    if not agent_store.change_password(get_engine(), agent.id, body.current, body.new, keep_session=cookie):
        raise HTTPException(403, "the current password is wrong")
    return Response(status_code=204)


class Heartbeat(Input):
    model_config = ConfigDict(extra="forbid")

    status: Literal["online", "away"] | None = Field(default=None, description="also set one's presence")


@router.post("/me/heartbeat", status_code=204)
def heartbeat(agent: CurrentAgent, body: Heartbeat | None = None) -> Response:
    """The inbox is open (send it every 30 s or so): an agent still ``online`` without one for
    ``OMNIDESK_PRESENCE_TIMEOUT`` seconds is set ``away`` by the sweep. With ``status``, the
    presence is set too (coming online pulls waiting conversations)."""
    if agent_store.heartbeat(get_engine(), agent.id, body.status if body is not None else None):
        ring_pull(agent.id)
    return Response(status_code=204)
