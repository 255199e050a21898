"""The automations that run before a conversation is assigned: its language, told from the
customer's messages (router.language), then the admins' rules (router.rules), which may read
that language. Pure over what ``store.automation`` loads; the store writes the outcome in its
transaction, and the assignment that follows sees the team, priority and skills set.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine

from router import sla
from router.language import DEFAULT_LANGUAGES, detector, language_update
from router.opening import open_now
from router.rules import Facts, OpenNow, Rule, contact_attributes, decide
from store.automation import Automated, Changes, ConversationFacts, run_automations
from store.settings import get_settings

log = logging.getLogger(__name__)


def parse_rules(rows: Sequence[Any]) -> list[Rule]:
    """The stored rules as :class:`Rule`; one that no longer validates is skipped (and logged),
    never a reason for routing to fail."""
    parsed = []
    for row in rows:
        try:
            parsed.append(Rule.of(row.id, row.name, row.conditions, row.actions, enabled=row.enabled,
                                  position=row.position))
        except ValidationError as exc:
            log.warning("routing rule %s (%s) is invalid and skipped: %s", row.id, row.name, exc)
    return parsed


def automate(facts: Sequence[ConversationFacts], stored_rules: Sequence[Any], now: datetime, *,
             languages: tuple[str, ...] = DEFAULT_LANGUAGES, is_open: OpenNow | None = None) -> dict[int, Changes]:
    """The changes for each conversation: its detected language (unless set by hand or by a
    rule), then what the enabled rules that match its new messages set."""
    rules = parse_rules(stored_rules)
    is_open = is_open or (lambda team_id, at: True)
    out: dict[int, Changes] = {}
    for fact in facts:
        language = language_update(fact.language, fact.language_source, fact.texts, languages)
        seen = Facts(channel_kind=fact.channel_kind, channel_id=fact.channel_id, language=language or fact.language,
                     text="\n".join(fact.new_texts), team_id=fact.team_id, at=now,
                     contact=contact_attributes(fact.contact_email, fact.contact_phone, fact.contact_name,
                                                fact.contact_attributes))
        outcome = decide(rules, seen, is_open)
        out[fact.id] = Changes(language=language, priority=outcome.priority, team_id=outcome.team_id,
                               skills=outcome.skills, tags=outcome.tags, applied=outcome.applied)
    return out


def languages() -> tuple[str, ...]:
    """The languages customers are detected in (``OMNIDESK_LANGUAGES``)."""
    return get_settings().language_codes() or DEFAULT_LANGUAGES


def warm() -> None:
    """Build the language detector now (its models take seconds to load), not in the first
    routing job: a worker calls this in the background when it starts."""
    detector(languages())


def run(engine: Engine, conversation_ids: Sequence[int]) -> Automated:
    """Run the automations on the conversations about to be routed (see ``store.automation``):
    what they changed, and those held (not to be assigned yet)."""
    chosen = languages()

    @functools.cache
    def is_open(team_id: int | None, at: datetime) -> bool:  # each team's hours read once a batch
        return open_now(engine, team_id, at)

    done = run_automations(engine, conversation_ids,
                           lambda facts, rows, now: automate(facts, rows, now, languages=chosen, is_open=is_open))
    for conversation_id, changes in done.written.items():
        if changes.priority is not None or changes.team_id is not None:  # its running SLA clock follows
            sla.retarget(engine, conversation_id)
    return done
