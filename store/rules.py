"""The admins' routing rules, as stored: list, create, update, delete; and the contacts' own
attributes their conditions read. Their meaning (validation, evaluation) is ``router.rules``'s; the
API validates a rule before it reaches this module."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, delete, func, select, update

from store.models import utcnow
from store.sql import contacts, rules

r = rules.c


def list_rules(engine: Engine) -> list[Any]:
    """Every rule, in the order they run (position, then id)."""
    with engine.connect() as conn:
        return conn.execute(select(rules).order_by(r.position, r.id)).all()


def get_rule(engine: Engine, rule_id: int) -> Any:
    """One rule, or None."""
    with engine.connect() as conn:
        return conn.execute(select(rules).where(r.id == rule_id)).first()


def create_rule(engine: Engine, *, name: str, conditions: list[dict[str, Any]], actions: list[dict[str, Any]],
                enabled: bool = True, position: int | None = None) -> Any:
    """A new rule; without ``position``, after the last one."""
    now = utcnow()
    with engine.begin() as conn:
        if position is None:
            position = (conn.execute(select(func.max(r.position))).scalar() or 0) + 1
        rule_id = conn.execute(rules.insert().values(
            name=name, conditions=conditions, actions=actions, enabled=enabled, position=position,
            created_at=now, updated_at=now).returning(r.id)).scalar_one()
        return conn.execute(select(rules).where(r.id == rule_id)).one()


def update_rule(engine: Engine, rule_id: int, changes: dict[str, Any]) -> Any:
    """Change a rule's name, position, enabled flag, conditions or actions; None if it does not exist."""
    values = {k: v for k, v in changes.items() if k in ("name", "position", "enabled", "conditions", "actions")}
    with engine.begin() as conn:
        if values:
            conn.execute(update(rules).where(r.id == rule_id).values(**values, updated_at=utcnow()))
        return conn.execute(select(rules).where(r.id == rule_id)).first()


def delete_rule(engine: Engine, rule_id: int) -> bool:
    """Delete a rule; whether it existed. What it did to conversations stays."""
    with engine.begin() as conn:
        return bool(conn.execute(delete(rules).where(r.id == rule_id)).rowcount)


def set_contact_attributes(engine: Engine, contact_id: int, attributes: dict[str, Any]) -> bool:
    """Replace a contact's own attributes (what rules' ``contact`` conditions read besides email,
    phone and name); whether the contact exists."""
    with engine.begin() as conn:
        return bool(conn.execute(update(contacts).where(contacts.c.id == contact_id)
                                 .values(attributes=attributes or None)).rowcount)
