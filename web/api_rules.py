"""Routing rules, configured by admins (only).

A rule: conditions that must all hold, actions to apply (``router.rules`` defines both and
validates them: a malformed rule answers 422 naming the field and the problem). Rules run in
``position`` order (then id) before each conversation with new customer messages is assigned.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from connectors import REGISTRY
from router.rules import Action, ChannelId, ChannelKind, Condition, SetTeam
from store import conversations as conversation_store
from store import rules as rule_store
from store.db import get_engine
from store.sql import channels
from web.deps import Admin
from web.schemas import Id, Input, errors

router = APIRouter(tags=["routing rules"], responses=errors(401, 422))
ADMIN_ONLY = errors(403)
NOT_FOUND = errors(404)


class RuleIn(Input):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    enabled: bool = True
    position: int | None = Field(default=None, ge=-1_000_000, le=1_000_000,
                                 description="rules run in position order, then id; default: after the last")
    conditions: list[Condition] = Field(default_factory=list, max_length=50,
                                        description="all must hold; none: the rule applies to every conversation")
    actions: list[Action] = Field(min_length=1, max_length=50)


class RulePatch(Input):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    enabled: bool | None = None
    position: int | None = Field(default=None, ge=-1_000_000, le=1_000_000)
    conditions: list[Condition] | None = Field(default=None, max_length=50)
    actions: list[Action] | None = Field(default=None, min_length=1, max_length=50)

    @model_validator(mode="after")
    def _not_null(self) -> RulePatch:
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null (leave it out to keep it)")
        return self


AttributeName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
AttributeValue = Annotated[str, StringConstraints(max_length=300)] | int | bool | None


class AttributesIn(Input):
    model_config = ConfigDict(extra="forbid")

    attributes: dict[AttributeName, AttributeValue] = Field(
        max_length=50, description="replaces the contact's attributes; `email`, `email_domain`, `phone` and "
        "`name` are the contact's own fields and cannot be set here")

    @model_validator(mode="after")
    def _not_derived(self) -> AttributesIn:
        taken = sorted(set(self.attributes) & {"email", "email_domain", "phone", "name"})
        if taken:
            raise ValueError(f"{', '.join(taken)}: the contact's own fields, not attributes")
        return self


class AttributesOut(BaseModel):
    contact_id: int
    attributes: dict[str, Any]


class RuleOut(BaseModel):
    id: int
    name: str
    enabled: bool
    position: int
    conditions: list[dict[str, Any]]
    actions: list[dict[str, Any]]


class RuleList(BaseModel):
    items: list[RuleOut]
    next: int | None = None


def _out(row: Any) -> RuleOut:
    return RuleOut(id=row.id, name=row.name, enabled=row.enabled, position=row.position,
                   conditions=row.conditions, actions=row.actions)


def _checked(conditions: list[Any] | None, actions: list[Any] | None) -> dict[str, Any]:
    """What the models cannot check alone: the teams, channels and kinds named exist. The parts as JSON."""
    engine = get_engine()
    problems = []
    for action in actions or ():
        if isinstance(action, SetTeam) and not conversation_store.team_exists(engine, action.team_id):
            problems.append(f"actions: set_team: no team {action.team_id}")
    for condition in conditions or ():
        if isinstance(condition, ChannelKind):
            problems.extend(f"conditions: channel_kind: unknown kind {kind!r} (one of {', '.join(sorted(REGISTRY))})"
                            for kind in condition.in_ if kind not in REGISTRY)
        if isinstance(condition, ChannelId):
            with engine.connect() as conn:
                known = set(conn.execute(channels.select().with_only_columns(channels.c.id)
                                         .where(channels.c.id.in_(condition.in_))).scalars())
            problems.extend(f"conditions: channel: no channel {cid}" for cid in condition.in_ if cid not in known)
    if problems:
        raise HTTPException(422, "; ".join(problems))
    out: dict[str, Any] = {}
    if conditions is not None:
        out["conditions"] = [c.model_dump(by_alias=True) for c in conditions]
    if actions is not None:
        out["actions"] = [a.model_dump(by_alias=True) for a in actions]
    return out


@router.get("/rules", responses=ADMIN_ONLY)
def list_rules(_admin: Admin) -> RuleList:
    """Every routing rule, in the order they run."""
    return RuleList(items=[_out(row) for row in rule_store.list_rules(get_engine())])


@router.post("/rules", status_code=201, responses=ADMIN_ONLY)
def create_rule(body: RuleIn, _admin: Admin) -> RuleOut:
    """A new rule; it applies to customer messages that arrive from now on."""
    parts = _checked(body.conditions, body.actions)
    return _out(rule_store.create_rule(get_engine(), name=body.name, enabled=body.enabled, position=body.position,
                                       **parts))


@router.get("/rules/{rule_id}", responses={**ADMIN_ONLY, **NOT_FOUND})
def get_rule(rule_id: Id, _admin: Admin) -> RuleOut:
    row = rule_store.get_rule(get_engine(), rule_id)
    if row is None:
        raise HTTPException(404, f"no rule {rule_id}")
    return _out(row)


@router.patch("/rules/{rule_id}", responses={**ADMIN_ONLY, **NOT_FOUND})
def update_rule(rule_id: Id, body: RulePatch, _admin: Admin) -> RuleOut:
    """Change a rule's name, position, enabled flag, conditions or actions (each replaced whole)."""
    changes = body.model_dump(exclude_unset=True, exclude={"conditions", "actions"})
    changes.update(_checked(body.conditions, body.actions))
    row = rule_store.update_rule(get_engine(), rule_id, changes)
    if row is None:
        raise HTTPException(404, f"no rule {rule_id}")
    return _out(row)


@router.delete("/rules/{rule_id}", status_code=204, response_class=Response, responses={**ADMIN_ONLY, **NOT_FOUND})
def delete_rule(rule_id: Id, _admin: Admin) -> Response:
    """Delete a rule; the tags, teams and priorities it set stay."""
    if not rule_store.delete_rule(get_engine(), rule_id):
        raise HTTPException(404, f"no rule {rule_id}")
    return Response(status_code=204)


@router.put("/contacts/{contact_id}/attributes", responses={**ADMIN_ONLY, **NOT_FOUND})
def set_attributes(contact_id: Id, body: AttributesIn, _admin: Admin) -> AttributesOut:
    """Set a contact's own attributes (``{"tier": "gold", "b2b": true}``), which routing rules'
    ``contact`` conditions read; the whole set is replaced."""
    if not rule_store.set_contact_attributes(get_engine(), contact_id, body.attributes):
        raise HTTPException(404, f"no contact {contact_id}")
    return AttributesOut(contact_id=contact_id, attributes=body.attributes)
