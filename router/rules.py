"""Routing rules: what admins configure to sort conversations before they are assigned.

A rule has conditions, all of which must hold, and actions::

    {"name": "Refunds from B2B customers",
     "conditions": [{"type": "words", "any": ["refund", "reembolso"]},
                    {"type": "contact", "attribute": "email_domain", "equals": "bigshop.example"}],
     "actions": [{"type": "set_priority", "value": "high"}, {"type": "add_skill", "value": "B2B"},
                 {"type": "add_tag", "value": "refund"}]}

Conditions: ``channel_kind`` / ``channel`` / ``language`` (``in``: a list), ``words`` (``any``: words
or phrases found in the customer's new messages, matched as whole words, ignoring case and
accents), ``contact`` (an ``attribute`` - ``email``, ``email_domain``, ``phone``, ``name`` or one
of the contact's own attributes - ``equals`` a value, ignoring case), ``business_hours`` (``is``
``open`` or ``closed``, for the conversation's team, by the business hours, ``router.opening.open_now``).

Actions: ``set_priority`` (urgent, high, normal, low), ``set_team`` (``team_id``), ``add_skill``,
``add_tag``. The enabled rules that match run in order (position, then id), each after the one
before: a later rule's priority or team replaces an earlier one's; skills and tags add up.

The decision is pure (:func:`decide` over :class:`Facts`); the store loads the facts and writes
the outcome in the transaction before assignment (``store.automation``), so the assignment sees
the team, priority and skills the rules set. Each rule applied is an event in the conversation's
history.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

from router.queue import PRIORITIES
from store.models import MAX_ID


Word = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50,
                                         pattern=r"^[^\s,][^,]*$")]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelKind(_Part):
    type: Literal["channel_kind"]
    in_: list[Annotated[str, StringConstraints(min_length=1, max_length=20)]] = Field(
        alias="in", min_length=1, max_length=20, description="channel kinds: email, sms, whatsapp, telegram, twitter, webchat, api")


class ChannelId(_Part):
    type: Literal["channel"]
    in_: list[Annotated[int, Field(gt=0, le=MAX_ID)]] = Field(alias="in", min_length=1, max_length=100,
                                                               description="channel ids")


class LanguageIs(_Part):
    type: Literal["language"]
    in_: list[Annotated[str, StringConstraints(to_lower=True, pattern=r"^[A-Za-z]{2,3}$")]] = Field(
        alias="in", min_length=1, max_length=50, description="ISO 639-1 codes")


class Words(_Part):
    type: Literal["words"]
    any: list[Word] = Field(min_length=1, max_length=100,
                            description="words or phrases; whole words, case and accents ignored")


class ContactIs(_Part):
    type: Literal["contact"]
    attribute: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] = Field(
        description="email, email_domain, phone, name, or one of the contact's own attributes")
    equals: Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)] | int | bool


class BusinessHours(_Part):
    type: Literal["business_hours"]
    is_: Literal["open", "closed"] = Field(alias="is")


Condition = Annotated[ChannelKind | ChannelId | LanguageIs | Words | ContactIs | BusinessHours,
                      Field(discriminator="type")]


class SetPriority(_Part):
    type: Literal["set_priority"]
    value: Literal["urgent", "high", "normal", "low"]


class SetTeam(_Part):
    type: Literal["set_team"]
    team_id: int = Field(gt=0, le=MAX_ID)


class AddSkill(_Part):
    type: Literal["add_skill"]
    value: Label


class AddTag(_Part):
    type: Literal["add_tag"]
    value: Label


Action = Annotated[SetPriority | SetTeam | AddSkill | AddTag, Field(discriminator="type")]

CONDITIONS: TypeAdapter[list[Condition]] = TypeAdapter(list[Condition])
ACTIONS: TypeAdapter[list[Action]] = TypeAdapter(list[Action])


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    """A rule as stored, its parts validated."""

    id: int
    name: str
    conditions: tuple[Condition, ...]
    actions: tuple[Action, ...]
    enabled: bool = True
    position: int = 0

    @classmethod
    def of(cls, id: int, name: str, conditions: Iterable[dict[str, Any]], actions: Iterable[dict[str, Any]], *,
           enabled: bool = True, position: int = 0) -> Rule:
        return cls(id, name, tuple(CONDITIONS.validate_python(list(conditions))),
                   tuple(ACTIONS.validate_python(list(actions))), enabled, position)


@dataclasses.dataclass(frozen=True, slots=True)
class Facts:
    """What rules read of a conversation: its channel, language, team, the customer's new text,
    the contact's attributes (``email``, ``email_domain``, ``phone``, ``name`` and their own)."""

    channel_kind: str
    channel_id: int
    language: str | None
    text: str
    contact: dict[str, Any]
    team_id: int | None
    at: datetime


@dataclasses.dataclass(slots=True)
class Outcome:
    """What the matching rules set: the last priority and team, the skills and tags added, and
    the rules applied (id, name, their actions as JSON), in order."""

    priority: int | None = None
    team_id: int | None = None
    skills: list[str] = dataclasses.field(default_factory=list)
    tags: list[str] = dataclasses.field(default_factory=list)
    applied: list[tuple[int, str, list[dict[str, Any]]]] = dataclasses.field(default_factory=list)


OpenNow = Callable[[int | None, datetime], bool]


def fold(text: str) -> str:
    """``text`` without case and accents: "Devolución" and "devolucion" fold alike."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def words(text: str) -> list[str]:
    """The folded words of ``text``."""
    return re.findall(r"\w+", fold(text))


def has_phrase(text_words: Sequence[str], phrase: str) -> bool:
    """Whether ``phrase`` (one or more words) occurs in ``text_words`` as whole words, in order."""
    wanted = words(phrase)
    if not wanted:
        return False
    size = len(wanted)
    return any(list(text_words[i:i + size]) == wanted for i in range(len(text_words) - size + 1))


def contact_attributes(email: str | None, phone: str | None, name: str | None,
                       own: dict[str, Any] | None) -> dict[str, Any]:
    """The attributes a ``contact`` condition reads: the contact's own, then the derived ones."""
    found: dict[str, Any] = dict(own or {})
    found.update(email=email, phone=phone, name=name,
                 email_domain=email.rsplit("@", 1)[1] if email and "@" in email else None)
    return found


def holds(condition: Condition, facts: Facts, text_words: Sequence[str], is_open: OpenNow = lambda team_id, at: True) -> bool:
    """Whether one condition holds for ``facts`` (``text_words``: ``words(facts.text)``)."""
    if isinstance(condition, ChannelKind):
        return facts.channel_kind in condition.in_
    if isinstance(condition, ChannelId):
        return facts.channel_id in condition.in_
    if isinstance(condition, LanguageIs):
        return (facts.language or "").lower() in condition.in_
    if isinstance(condition, Words):
        return any(has_phrase(text_words, phrase) for phrase in condition.any)
    if isinstance(condition, ContactIs):
        value = facts.contact.get(condition.attribute)
        return value is not None and fold(str(value)).strip() == fold(str(condition.equals)).strip()
    if isinstance(condition, BusinessHours):
        return is_open(facts.team_id, facts.at) == (condition.is_ == "open")
    raise TypeError(f"unknown condition {condition!r}")


def matches(rule: Rule, facts: Facts, is_open: OpenNow = lambda team_id, at: True) -> bool:
    """Whether the rule is enabled and all its conditions hold (a rule without conditions always)."""
    text_words = words(facts.text)
    return rule.enabled and all(holds(cond, facts, text_words, is_open) for cond in rule.conditions)


def decide(rules: Iterable[Rule], facts: Facts, is_open: OpenNow = lambda team_id, at: True) -> Outcome:
    """Apply the matching rules in order (position, then id). A rule that sets the team changes
    the team later rules see (their business hours are that team's)."""
    outcome = Outcome()
    for rule in sorted(rules, key=lambda r: (r.position, r.id)):
        if not matches(rule, facts, is_open):
            continue
        for action in rule.actions:
            if isinstance(action, SetPriority):
                outcome.priority = PRIORITIES[action.value]
            elif isinstance(action, SetTeam):
                outcome.team_id = action.team_id
                facts = dataclasses.replace(facts, team_id=action.team_id)
            elif isinstance(action, AddSkill) and action.value not in outcome.skills:
                outcome.skills.append(action.value)
            elif isinstance(action, AddTag) and action.value not in outcome.tags:
                outcome.tags.append(action.value)
        outcome.applied.append((rule.id, rule.name, [a.model_dump(by_alias=True) for a in rule.actions]))
    return outcome
