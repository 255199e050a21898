"""The routing rules as pure functions, without a database: eligibility, the queue's order and
the pick loop (their SQL forms are checked against them in test_rules_sql.py)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest

from router.eligibility import available, eligible, fits
from router.picks import pick
from router.policies import least_loaded, round_robin
from router.queue import in_queue, queue, queue_key
from router.route import decider
from store.assignment_batch import AgentState, ConversationState, Pick

NOW = datetime(2026, 1, 1, 12, 0)


def agent(id: int, capacity: int = 5, load: int = 0, *, teams: set[int] | None = None,
          languages: set[str] | None = None, last: datetime | None = None, **kw: object) -> AgentState:
    return AgentState(id, capacity, load, last, teams=teams or set(), languages=languages or set(), **kw)  # type: ignore[arg-type]


def conv(id: int, priority: int = 0, waited: int | None = 60, **kw: object) -> ConversationState:
    """A conversation waiting ``waited`` seconds (None: no waiting time)."""
    since = None if waited is None else NOW - timedelta(seconds=waited)
    return ConversationState(id, priority, since, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("changes", "ok"), [
    ({}, True),
    ({"presence": "away"}, False),
    ({"presence": "offline"}, False),
    ({"active": False}, False),
    ({"active_count": 5}, False),  # full
    ({"active_count": 7}, False),  # over capacity after a manual assignment
    ({"active_count": 4}, True),
    ({"capacity": 0}, False),
])
def test_available_means_active_online_and_below_capacity(changes: dict[str, object], ok: bool) -> None:
    assert available(dataclasses.replace(agent(1), **changes)) is ok  # type: ignore[arg-type]


@pytest.mark.parametrize(("teams", "languages", "team_id", "language", "ok"), [
    (set(), set(), None, None, True),
    (set(), set(), None, "", True),  # an empty language asks for no one in particular
    ({2}, set(), 2, None, True),
    ({2}, set(), 3, None, False),
    (set(), set(), 2, None, False),
    (set(), {"de"}, None, "de", True),
    (set(), {"de"}, None, "en", False),
    (set(), set(), None, "en", True),  # an agent who lists no languages takes any
    ({2}, {"de"}, 2, "en", False),
    ({2}, {"de", "en"}, 2, "en", True),
])
def test_fits_team_and_language(teams: set[int], languages: set[str], team_id: int | None, language: str | None,
                                ok: bool) -> None:
    someone = agent(1, teams=teams, languages=languages)
    conversation = conv(1, team_id=team_id, language=language)
    assert fits(someone, conversation) is ok
    assert eligible(someone, conversation) is ok
    assert eligible(dataclasses.replace(someone, presence="offline"), conversation) is False


def test_queue_order_priority_then_waiting_then_id_with_no_waiting_time_last() -> None:
    convs = [conv(1, waited=10), conv(2, waited=None), conv(3, priority=2, waited=None), conv(4, waited=500),
             conv(5, waited=500), conv(6, priority=2, waited=5), conv(7, priority=-1, waited=9999)]
    assert [c.id for c in sorted(convs, key=queue_key)] == [6, 3, 4, 5, 1, 2, 7]


def test_the_queue_holds_open_unassigned_conversations_only() -> None:
    convs = [conv(1), conv(2, assignee_id=9), conv(3, status="pending"), conv(4, status="resolved"),
             conv(5, waited=1000, status="snoozed"), conv(6, waited=None)]
    assert [in_queue(c) for c in convs] == [True, False, False, False, False, True]
    assert [c.id for c in queue(convs)] == [1, 6]


def test_pick_spreads_by_least_load_and_updates_agents() -> None:
    big, small, busy = agent(1, capacity=5), agent(2, capacity=3), agent(3, capacity=4, load=1, last=NOW)
    convs = [conv(i, waited=100 - i) for i in range(1, 9)]
    picks = pick(convs, [big, small, busy], NOW, key=least_loaded)
    # Spare: big 5, small 3, busy 3; ties go to the one idle longest (never assigned first).
    assert [p.agent_id for p in picks] == [1, 1, 2, 3, 1, 2, 3, 1]
    assert [p.conversation_id for p in picks] == list(range(1, 9))
    assert [p.at for p in picks] == [NOW + timedelta(microseconds=n) for n in range(8)]
    assert (big.active_count, small.active_count, busy.active_count) == (4, 2, 3)
    assert big.last_assigned_at == NOW + timedelta(microseconds=7)


def test_pick_never_passes_capacity_and_leaves_the_rest_waiting() -> None:
    solo = agent(1, capacity=2)
    convs = [conv(1, waited=5), conv(2, priority=1, waited=1), conv(3, waited=50), conv(4, waited=None)]
    assert pick(convs, [solo], NOW, key=least_loaded) == [Pick(2, 1, NOW), Pick(3, 1, NOW + timedelta(microseconds=1))]
    assert solo.active_count == 2
    assert pick([conv(5)], [solo], NOW, key=least_loaded) == []


def test_pick_respects_skills_presence_and_the_queue() -> None:
    greta = agent(1, capacity=1, teams={7}, languages={"de"})
    eve = agent(2, capacity=5, languages={"en"})
    away = agent(3, capacity=9, languages={"fr"}, presence="away")
    convs = [conv(1, team_id=7, language="de"), conv(2, team_id=7, language="de", waited=30),
             conv(3, language="en"), conv(4, language="fr"), conv(5, assignee_id=2), conv(6, status="resolved")]
    picks = pick(convs, [greta, eve, away], NOW, key=least_loaded)
    assert {p.conversation_id: p.agent_id for p in picks} == {1: 1, 3: 2}


def test_round_robin_takes_turns_whatever_the_load() -> None:
    trio = [agent(1, capacity=10, load=6), agent(2, capacity=10), agent(3, capacity=10, load=9)]
    picks = pick([conv(i, waited=100 - i) for i in range(7)], trio, NOW, key=round_robin)
    assert [p.agent_id for p in picks] == [1, 2, 3, 1, 2, 1, 2]  # agent 3 is full after one


def test_decider_uses_the_named_policy() -> None:
    def pair() -> list[AgentState]:
        return [agent(1, capacity=10, load=5), agent(2, capacity=10, load=0, last=NOW)]

    assert [p.agent_id for p in decider("least_loaded")([conv(1)], pair(), NOW)] == [2]
    assert [p.agent_id for p in decider("round_robin")([conv(1)], pair(), NOW)] == [1]
    with pytest.raises(KeyError):
        decider("random")
