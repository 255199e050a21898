"""Routing rules as pure decisions (router.rules): each condition, each action, their order, and
the validation that refuses a malformed rule."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from pydantic import ValidationError

from router.rules import PRIORITIES, Facts, Rule, contact_attributes, decide, fold, has_phrase, matches, words

AT = datetime(2026, 11, 30, 10, 0)


def facts(**kw: Any) -> Facts:
    values: dict[str, Any] = dict(channel_kind="email", channel_id=3, language="es", text="Hola", team_id=None, at=AT,
                                  contact=contact_attributes("Ana@BigShop.example", "+34600000000", "Ana",
                                                             {"tier": "B2B", "vip": True}))
    return Facts(**(values | kw))


def rule(conditions: list[dict[str, Any]], actions: list[dict[str, Any]] | None = None, *, id: int = 1,
         position: int = 0, enabled: bool = True, name: str = "r") -> Rule:
    return Rule.of(id, name, conditions, actions or [{"type": "add_tag", "value": "hit"}], enabled=enabled,
                   position=position)


def hit(conditions: list[dict[str, Any]], seen: Facts | None = None, is_open: Any = None) -> bool:
    return matches(rule(conditions), seen or facts(), is_open or (lambda team, at: True))


def test_channel_kind_and_channel_id() -> None:
    assert hit([{"type": "channel_kind", "in": ["email", "sms"]}])
    assert not hit([{"type": "channel_kind", "in": ["whatsapp"]}])
    assert hit([{"type": "channel", "in": [3]}])
    assert not hit([{"type": "channel", "in": [4, 5]}])


def test_language_condition_reads_the_conversations_language() -> None:
    assert hit([{"type": "language", "in": ["ES", "ca"]}])  # codes folded to lower case
    assert not hit([{"type": "language", "in": ["ca"]}])
    assert not hit([{"type": "language", "in": ["es"]}], facts(language=None))


def test_words_match_whole_words_ignoring_case_and_accents() -> None:
    text = facts(text="Quiero la DEVOLUCIÓN del pedido, está roto!")
    assert hit([{"type": "words", "any": ["devolucion"]}], text)
    assert hit([{"type": "words", "any": ["Está Roto"]}], text)  # a phrase, in order
    assert not hit([{"type": "words", "any": ["roto está"]}], text)
    assert not hit([{"type": "words", "any": ["devol"]}], text)  # part of a word is no match
    assert not hit([{"type": "words", "any": ["factura", "reembolso"]}], text)
    assert hit([{"type": "words", "any": ["cancel·lar"]}], facts(text="Vull cancel·lar la comanda"))
    assert fold("Ação Ñandú") == "acao nandu" and words("l'adreça, no!") == ["l", "adreca", "no"]
    assert not has_phrase(words("hola"), "  ")


def test_contact_attributes_derived_and_the_shops_own() -> None:
    assert hit([{"type": "contact", "attribute": "email_domain", "equals": "bigshop.example"}])
    assert not hit([{"type": "contact", "attribute": "email_domain", "equals": "shop.example"}])
    assert hit([{"type": "contact", "attribute": "tier", "equals": "b2b"}])
    assert hit([{"type": "contact", "attribute": "vip", "equals": True}])
    assert not hit([{"type": "contact", "attribute": "missing", "equals": "x"}])
    no_email = facts(contact=contact_attributes(None, "+34600000000", None, None))
    assert not hit([{"type": "contact", "attribute": "email_domain", "equals": "bigshop.example"}], no_email)
    assert contact_attributes("ana@x.example", None, None, {"email": "spoofed"})["email"] == "ana@x.example"


def test_business_hours_ask_open_now_for_the_conversations_team() -> None:
    asked: list[tuple[Any, datetime]] = []

    def closed(team: int | None, at: datetime) -> bool:
        asked.append((team, at))
        return False

    assert hit([{"type": "business_hours", "is": "closed"}], facts(team_id=7), closed)
    assert not hit([{"type": "business_hours", "is": "open"}], facts(team_id=7), closed)
    assert asked == [(7, AT), (7, AT)]
    assert hit([{"type": "business_hours", "is": "open"}])  # the seam: always open


def test_all_conditions_must_hold_and_disabled_rules_never_do() -> None:
    both = [{"type": "channel_kind", "in": ["email"]}, {"type": "language", "in": ["ca"]}]
    assert not hit(both)
    assert hit(both, facts(language="ca"))
    assert matches(rule([]), facts())  # no conditions: always
    assert not matches(rule([], enabled=False), facts())


def test_actions_set_priority_team_and_add_skills_and_tags() -> None:
    outcome = decide([rule([], [{"type": "set_priority", "value": "urgent"}, {"type": "set_team", "team_id": 4},
                                {"type": "add_skill", "value": "B2B"}, {"type": "add_tag", "value": "refund"},
                                {"type": "add_tag", "value": "refund"}], id=9, name="B2B refunds")], facts())
    assert (outcome.priority, outcome.team_id, outcome.skills, outcome.tags) == (PRIORITIES["urgent"], 4, ["B2B"],
                                                                                  ["refund"])
    assert outcome.applied == [(9, "B2B refunds", [
        {"type": "set_priority", "value": "urgent"}, {"type": "set_team", "team_id": 4},
        {"type": "add_skill", "value": "B2B"}, {"type": "add_tag", "value": "refund"},
        {"type": "add_tag", "value": "refund"}])]
    assert PRIORITIES["urgent"] > PRIORITIES["high"] > PRIORITIES["normal"] == 0 > PRIORITIES["low"]


def test_rules_run_in_position_order_later_sets_win_and_additions_add_up() -> None:
    first = rule([], [{"type": "set_priority", "value": "low"}, {"type": "add_tag", "value": "a"}], id=5, position=1)
    second = rule([], [{"type": "set_priority", "value": "high"}, {"type": "add_tag", "value": "b"}], id=2, position=2)
    outcome = decide([second, first], facts())
    assert outcome.priority == PRIORITIES["high"] and outcome.tags == ["a", "b"]
    assert [r[0] for r in outcome.applied] == [5, 2]
    # Same position: by id.
    outcome = decide([rule([], [{"type": "set_team", "team_id": 2}], id=8),
                      rule([], [{"type": "set_team", "team_id": 1}], id=3)], facts())
    assert outcome.team_id == 2 and [r[0] for r in outcome.applied] == [3, 8]


def test_a_team_set_by_a_rule_is_the_team_later_rules_see() -> None:
    open_teams = {4}
    to_four = rule([], [{"type": "set_team", "team_id": 4}], id=1, position=1)
    when_open = rule([{"type": "business_hours", "is": "open"}], [{"type": "add_tag", "value": "open"}], id=2,
                     position=2)
    outcome = decide([to_four, when_open], facts(team_id=1), lambda team, at: team in open_teams)
    assert outcome.tags == ["open"]
    assert decide([when_open], facts(team_id=1), lambda team, at: team in open_teams).tags == []


def test_nothing_matches_nothing_changes() -> None:
    outcome = decide([rule([{"type": "language", "in": ["pl"]}])], facts())
    assert (outcome.priority, outcome.team_id, outcome.skills, outcome.tags, outcome.applied) == (None, None, [], [], [])


@pytest.mark.parametrize(("conditions", "actions", "problem"), [
    ([{"type": "colour", "in": ["red"]}], None, "colour"),
    ([{"type": "channel_kind", "in": []}], None, "at least 1"),
    ([{"type": "language", "in": ["spanish"]}], None, "pattern"),
    ([{"type": "words", "any": [""]}], None, "at least 1"),
    ([{"type": "business_hours", "is": "sometimes"}], None, "'open' or 'closed'"),
    ([{"type": "contact", "attribute": "tier"}], None, "equals"),
    ([{"type": "channel", "in": [1], "extra": 1}], None, "Extra inputs"),
    ([], [{"type": "set_priority", "value": "asap"}], "'urgent', 'high', 'normal' or 'low'"),
    ([], [{"type": "set_team"}], "team_id"),
    ([], [{"type": "add_tag", "value": "a,b"}], "pattern"),
    ([], [{"type": "add_skill", "value": " "}], "at least 1"),
])
def test_malformed_rules_are_refused_with_the_reason(conditions: list[Any], actions: list[Any] | None,
                                                     problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        rule(conditions, actions)
