"""Canned responses: every agent reads them (rendered for a conversation they may see); admins
write them. Placeholders are rendered by ``store.canned.render`` alone."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import ConfigDict, Field, model_validator

from store import canned
from store import conversations as store
from store.db import get_engine
from web.deps import Admin, CurrentAgent, check_visible
from web.schemas import CannedList, CannedOut, Id, Input, errors

router = APIRouter(tags=["canned responses"], responses=errors(401, 422))

Shortcut = Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[^\s/]+$",
                                description="what the agent types after `/`, without spaces")]


class CannedIn(Input):
    shortcut: Shortcut
    title: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=20_000, description="may hold placeholders such as "
                      "`{{contact.first_name}}`, `{{conversation.number}}`, `{{agent.name}}`")


class CannedPatch(Input):
    model_config = ConfigDict(extra="forbid")

    shortcut: Shortcut | None = None
    title: str | None = Field(default=None, min_length=1, max_length=200)
    text: str | None = Field(default=None, min_length=1, max_length=20_000)

    @model_validator(mode="after")
    def _not_null(self) -> CannedPatch:
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null (leave it out to keep it)")
        return self


def _out(row: Any, rendered: str | None = None) -> CannedOut:
    return CannedOut(id=row.id, shortcut=row.shortcut, title=row.title, text=row.text, rendered=rendered,
                     created_by=row.created_by, created_at=row.created_at, updated_at=row.updated_at)


@router.get("/canned-responses", responses=errors(404))
def list_canned(
    agent: CurrentAgent,
    q: str | None = Query(None, max_length=200, description="in the shortcut, title or text (any case)"),
    conversation_id: Id | None = Query(None, description="also render each for this conversation"),
) -> CannedList:
    """Canned responses by shortcut; with ``conversation_id`` (one the caller may see), each has
    ``rendered``: its placeholders filled for that conversation and the caller."""
    engine = get_engine()
    values = None
    if conversation_id is not None:
        check_visible(agent, store.summary(engine, conversation_id), f"no conversation {conversation_id}")
        values = canned.values_for(engine, conversation_id, agent.id)
    rows = canned.listing(engine, q.replace("\x00", "") if q else None)
    return CannedList(items=[_out(r, canned.render(r.text, values) if values is not None else None) for r in rows])


@router.post("/canned-responses", status_code=201, responses=errors(403, 409))
def create_canned(body: CannedIn, admin: Admin) -> CannedOut:
    try:
        canned_id = canned.create(get_engine(), shortcut=body.shortcut, title=body.title, text=body.text,
                                  created_by=admin.id)
    except canned.DuplicateShortcut as exc:
        raise HTTPException(409, str(exc)) from None
    return _out(canned.get(get_engine(), canned_id))


@router.patch("/canned-responses/{canned_id}", responses=errors(403, 404, 409))
def update_canned(canned_id: Id, body: CannedPatch, _admin: Admin) -> CannedOut:
    try:
        found = canned.change(get_engine(), canned_id, body.model_dump(exclude_unset=True))
    except canned.DuplicateShortcut as exc:
        raise HTTPException(409, str(exc)) from None
    if not found:
        raise HTTPException(404, f"no canned response {canned_id}")
    return _out(canned.get(get_engine(), canned_id))


@router.delete("/canned-responses/{canned_id}", status_code=204, responses=errors(403, 404))
def delete_canned(canned_id: Id, _admin: Admin) -> Response:
    if not canned.remove(get_engine(), canned_id):
        raise HTTPException(404, f"no canned response {canned_id}")
    return Response(status_code=204)
