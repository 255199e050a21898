"""Canned responses: replies an agent inserts by shortcut, with placeholders filled for the
conversation at hand.

Placeholders are rendered by :func:`render`, and only there: ``{{contact.name}}``,
``{{contact.first_name}}``, ``{{contact.email}}``, ``{{conversation.number}}``, ``{{agent.name}}``,
``{{agent.first_name}}`` (spaces inside the braces allowed). An unknown placeholder is kept as
written, so a typo shows in the composer instead of vanishing. A known placeholder without a value
(a contact with no name or email) renders as empty text: no fallback word, because the shop writes
in its customers' languages and a fixed "there" would be English in a Catalan reply. Authors write
responses that read well either way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from store.models import MAX_ID, utcnow
from store.sql import agents, canned, clean, contacts, conversations

k = canned.c
PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+\.[a-z_]+)\s*\}\}")
NAMES = ("contact.name", "contact.first_name", "contact.email", "conversation.number", "agent.name",
         "agent.first_name")


class DuplicateShortcut(ValueError):
    """Another canned response has this shortcut (the API answers 409)."""


def render(text: str, values: Mapping[str, str | None]) -> str:
    """``text`` with each known placeholder replaced by its value in ``values`` (None: empty);
    placeholders not in NAMES are kept as written."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in NAMES:
            return match.group(0)
        return values.get(name) or ""

    return PLACEHOLDER.sub(fill, text)


def first_name(name: str | None) -> str | None:
    """The first word of a name ("Marta Puig" -> "Marta"); None for no name."""
    words = (name or "").split()
    return words[0] if words else None


def values_for(engine: Engine, conversation_id: int, agent_id: int) -> dict[str, str | None]:
    """The placeholders' values for a conversation, written by ``agent_id``."""
    with engine.connect() as conn:
        contact = conn.execute(
            select(contacts.c.name, contacts.c.email).join(conversations, conversations.c.contact_id == contacts.c.id)
            .where(conversations.c.id == conversation_id)
        ).first()
        agent = conn.execute(select(agents.c.name).where(agents.c.id == agent_id)).first()
    return {
        "contact.name": contact.name if contact else None,
        "contact.first_name": first_name(contact.name) if contact else None,
        "contact.email": contact.email if contact else None,
        "conversation.number": str(conversation_id),
        "agent.name": agent.name if agent else None,
        "agent.first_name": first_name(agent.name) if agent else None,
    }


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def listing(engine: Engine, q: str | None = None, *, limit: int = 500) -> list[Any]:
    """Canned responses by shortcut; with ``q``, those whose shortcut, title or text contains it
    (any case)."""
    query = select(canned).order_by(k.shortcut).limit(limit)
    if q:
        pattern = f"%{_escape_like(q)}%"
        query = query.where(or_(k.shortcut.ilike(pattern, escape="\\"), k.title.ilike(pattern, escape="\\"),
                                k.text.ilike(pattern, escape="\\")))
    with engine.connect() as conn:
        return list(conn.execute(query).all())


def get(engine: Engine, canned_id: int) -> Any:
    if not 0 < canned_id <= MAX_ID:
        return None
    with engine.connect() as conn:
        return conn.execute(select(canned).where(k.id == canned_id)).first()


def create(engine: Engine, *, shortcut: str, title: str, text: str, created_by: int | None) -> int:
    """A new canned response; DuplicateShortcut when the shortcut is taken."""
    now = utcnow()
    try:
        with engine.begin() as conn:
            return conn.execute(canned.insert().values(
                shortcut=shortcut, title=clean(title), text=clean(text), created_by=created_by, created_at=now,
                updated_at=now).returning(k.id)).scalar_one()
    except IntegrityError:
        raise DuplicateShortcut(f"a canned response with shortcut {shortcut!r} exists") from None


def change(engine: Engine, canned_id: int, values: dict[str, str]) -> bool:
    """Change shortcut, title or text; False when there is no such response; DuplicateShortcut."""
    if not 0 < canned_id <= MAX_ID:
        return False
    try:
        with engine.begin() as conn:
            done = conn.execute(update(canned).where(k.id == canned_id)
                                .values(**{n: clean(v) for n, v in values.items()}, updated_at=utcnow()))
            return done.rowcount > 0
    except IntegrityError:
        raise DuplicateShortcut(f"a canned response with shortcut {values.get('shortcut')!r} exists") from None


def remove(engine: Engine, canned_id: int) -> bool:
    if not 0 < canned_id <= MAX_ID:
        return False
    with engine.begin() as conn:
        return conn.execute(delete(canned).where(k.id == canned_id)).rowcount > 0
