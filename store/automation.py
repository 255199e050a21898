"""The automations' transaction: before conversations are assigned, load what the router's
automations read (the customer's recent messages, the channel, the contact, the rules), hand it
to their decision, and write what it decided, with an event for each change and each rule applied.

The decision (the customer's language, router.language; the admins' rules, router.rules) is the
router's, passed in as an :data:`Automate` callable, since the store does not import the router.
Each customer message is seen once: ``conversations.automated_through`` keeps the last one, and a
conversation with nothing new is left alone (a conversation sent back to the queue by hand is not
re-sorted by the rules).

The decision is made outside any transaction; the write is a compare-and-set per conversation
under a SKIP LOCKED lock, as routing locks them (see :func:`run_automations`). A conversation
whose write was skipped is *held*: routing leaves it needing routing rather than assign it
unsorted (its rules would never run until the customer wrote again), and routes it again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, func, select, update

from store.dialect import for_update
from store.events import append, event
from store.models import utcnow
from store.sql import channels, contacts, conversations, insert_ignore, messages, rules, tags

c = conversations.c
m = messages.c

# The customer's messages a conversation's language is told from (the newest ones).
RECENT = 10


@dataclasses.dataclass(frozen=True, slots=True)
class ConversationFacts:
    """A conversation as its automations see it, under its row lock. ``texts``: the customer's
    recent messages, oldest first; ``new_texts``: those of them no automation has seen yet."""

    id: int
    channel_id: int
    channel_kind: str
    team_id: int | None
    priority: int
    language: str | None
    language_source: str | None
    skills: tuple[str, ...]
    texts: tuple[str, ...]
    new_texts: tuple[str, ...]
    contact_email: str | None = None
    contact_phone: str | None = None
    contact_name: str | None = None
    contact_attributes: dict[str, Any] | None = None  # the shop's own facts about the customer


@dataclasses.dataclass(slots=True)
class Changes:
    """What the automations decided for one conversation; None or empty: unchanged. ``applied``:
    the rules that matched, as (rule id, name, actions), each recorded as a ``rule.applied`` event."""

    language: str | None = None
    priority: int | None = None
    team_id: int | None = None
    skills: list[str] = dataclasses.field(default_factory=list)
    tags: list[str] = dataclasses.field(default_factory=list)
    applied: list[tuple[int, str, list[dict[str, Any]]]] = dataclasses.field(default_factory=list)


# The router's decision: (conversations, the stored rules as rows, now) -> changes by conversation id.
Automate = Callable[[Sequence[ConversationFacts], Sequence[Any], datetime], dict[int, Changes]]


@dataclasses.dataclass(frozen=True, slots=True)
class Automated:
    """What :func:`run_automations` did: the changes written, by conversation id, and the
    conversations ``held``: due for their automations, but another transaction held the row (an
    acknowledgement being claimed, an agent's change, another router) or changed what they read
    meanwhile, so nothing was written. Not to be assigned before their automations have run."""

    written: dict[int, Changes] = dataclasses.field(default_factory=dict)
    held: tuple[int, ...] = ()


def run_automations(engine: Engine, conversation_ids: Sequence[int], automate: Automate) -> Automated:
    """Run the automations on those of ``conversation_ids`` that need routing and have customer
    messages no automation has seen; write what they decide. Returns the changes by id and the
    conversations held (see :class:`Automated`).

    What they read is read first, and the decision (language detection takes milliseconds a
    conversation) is made outside any transaction: on SQLite no write lock is held meanwhile. The
    write (one statement for the batch) takes each conversation only if nothing it decided on changed
    since (:data:`_GUARD`), in a transaction that locks them and skips rows another router holds;
    those are left for the next routing attempt."""
    wanted = list(dict.fromkeys(conversation_ids))
    if not wanted:
        return Automated()
    now = utcnow()
    with engine.connect() as conn:
        rows = conn.execute(
            select(c.id, c.channel_id, c.contact_id, c.team_id, c.priority, c.language, c.language_source,
                   c.skills, c.automated_through, channels.c.kind)
            .join(channels, channels.c.id == c.channel_id)
            .where(c.id.in_(wanted), c.needs_routing.is_(True))).all()
        recent = _recent_texts(conn, [r.id for r in rows]) if rows else {}
        rows = [r for r in rows if recent.get(r.id) and recent[r.id][-1][0] > (r.automated_through or 0)]
        if not rows:
            return Automated()
        people = {p.id: p for p in conn.execute(
            select(contacts.c.id, contacts.c.email, contacts.c.phone, contacts.c.name, contacts.c.attributes)
            .where(contacts.c.id.in_({r.contact_id for r in rows})))}
        stored_rules = conn.execute(select(rules).where(rules.c.enabled.is_(True))
                                    .order_by(rules.c.position, rules.c.id)).all()
    facts = [_facts(r, recent[r.id], people.get(r.contact_id)) for r in rows]
    decided = automate(facts, stored_rules, now)
    written: dict[int, Changes] = {}
    held: list[int] = []
    params: list[dict[str, Any]] = []
    told: list[dict[str, Any]] = []
    tagged: list[dict[str, Any]] = []
    with engine.begin() as conn:
        look = select(c.id, *_GUARD, c.updated_at).where(c.id.in_([r.id for r in rows]))
        locked = {r.id: r for r in conn.execute(for_update(conn, look, of=conversations, key_share=True,
                                                           skip_locked=True))}
        for fact, row in zip(facts, rows, strict=True):
            now_row = locked.get(fact.id)
            if now_row is None or tuple(now_row[1:1 + len(_GUARD)]) != tuple(getattr(row, col.key) for col in _GUARD):
                held.append(fact.id)  # another transaction holds it, or it changed meanwhile: routed again
                continue
            changes = decided.get(fact.id, Changes())
            values, shown = _values(fact, changes)
            params.append({
                "cid": fact.id, "v_language": values.get("language", fact.language),
                "v_language_source": values.get("language_source", fact.language_source),
                "v_priority": values.get("priority", fact.priority), "v_team_id": values.get("team_id", fact.team_id),
                "v_skills": values.get("skills", list(fact.skills)), "v_automated_through": recent[fact.id][-1][0],
                "v_updated_at": now if shown else now_row.updated_at})
            written[fact.id] = changes
            new_tags = list(dict.fromkeys(changes.tags))
            tagged.extend({"conversation_id": fact.id, "tag": tag, "created_at": now} for tag in new_tags)
            if new_tags:
                shown["tags_added"] = new_tags
            told.extend(event("rule.applied", fact.id, at=now, rule_id=rule_id, rule=name, actions=actions)
                        for rule_id, name, actions in changes.applied)
            if shown:
                told.append(event("conversation.updated", fact.id, at=now, **shown))
        if params:  # one statement, many rows (pipelined on PostgreSQL)
            conn.execute(_WRITE, params)
        if tagged:
            conn.execute(insert_ignore(conn, tags, ["conversation_id", "tag"]), tagged)
        append(conn, told)
    return Automated(written, tuple(held))


# What must not have changed between the read and the write: the messages seen, and who set the
# language, the language, priority and team (an agent's change made meanwhile wins).
_GUARD = (c.automated_through, c.language_source, c.language, c.priority, c.team_id)
_WRITE = update(conversations).where(c.id == bindparam("cid")).values(
    {col: bindparam(f"v_{col}", type_=conversations.c[col].type)
     for col in ("language", "language_source", "priority", "team_id", "skills", "automated_through", "updated_at")})


def _values(fact: ConversationFacts, changes: Changes) -> tuple[dict[str, Any], dict[str, Any]]:
    """The columns to write, and what the event shows of them."""
    values: dict[str, Any] = {}
    if changes.language and changes.language != fact.language:
        values.update(language=changes.language, language_source="detected")
    if changes.priority is not None and changes.priority != fact.priority:
        values["priority"] = changes.priority
    if changes.team_id is not None and changes.team_id != fact.team_id:
        values["team_id"] = changes.team_id
    skills = list(dict.fromkeys([*fact.skills, *changes.skills]))
    if len(skills) != len(fact.skills):
        values["skills"] = skills
    shown = {k: v for k, v in values.items() if k != "language_source"}
    return values, shown


def _recent_texts(conn: Any, conversation_ids: list[int]) -> dict[int, list[tuple[int, str]]]:
    """The customer's newest :data:`RECENT` messages of each conversation, (id, text), oldest first."""
    place = func.row_number().over(partition_by=m.conversation_id, order_by=m.id.desc()).label("place")
    inner = (select(m.conversation_id, m.id, m.text, place)
             .where(m.conversation_id.in_(conversation_ids), m.direction == "in", m.private.is_(False))
             .subquery())
    found: dict[int, list[tuple[int, str]]] = {}
    for row in conn.execute(select(inner.c.conversation_id, inner.c.id, inner.c.text)
                            .where(inner.c.place <= RECENT).order_by(inner.c.id)):
        found.setdefault(row.conversation_id, []).append((row.id, row.text or ""))
    return found


def _facts(row: Any, recent: list[tuple[int, str]], person: Any) -> ConversationFacts:
    seen = row.automated_through or 0
    return ConversationFacts(
        id=row.id, channel_id=row.channel_id, channel_kind=row.kind, team_id=row.team_id, priority=row.priority or 0,
        language=row.language, language_source=row.language_source, skills=tuple(row.skills or ()),
        texts=tuple(text for _, text in recent), new_texts=tuple(text for mid, text in recent if mid > seen),
        contact_email=getattr(person, "email", None), contact_phone=getattr(person, "phone", None),
        contact_name=getattr(person, "name", None), contact_attributes=getattr(person, "attributes", None),
    )
