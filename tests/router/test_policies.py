"""The routing core's pure rules, without a database: capacity per group of channel kinds,
required skills, each team policy (least loaded, round robin among agents with room, sticky),
priority names, skills widening with time, and the queue's place and expected wait."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connectors import CAPACITY_GROUPS, GROUPS, capacity_group
from router import widening
from router.eligibility import eligible, fits, group_capacity, has_room
from router.picks import pick
from router.policies import POLICIES, STICKY_SECONDS, returning
from router.queue import PRIORITIES, priority_name, priority_value, queue
from router.route import decider
from router.waits import expected_wait, position
from tests.router.test_rules import NOW, agent, conv


def test_every_channel_kind_has_a_group() -> None:
    from connectors import REGISTRY

    assert set(REGISTRY) | {"webchat"} <= set(CAPACITY_GROUPS)
    assert set(CAPACITY_GROUPS.values()) == set(GROUPS)
    assert (capacity_group("email"), capacity_group("webchat"), capacity_group("whatsapp")) == (
        "email", "chat", "messaging")
    assert capacity_group("carrier-pigeon") == "messaging"


def test_group_capacity_limits_each_group_apart() -> None:
    ana = agent(1, capacity=16, capacities={"email": 8, "chat": 3}, loads={"chat": 3, "email": 2})
    assert group_capacity(ana, "chat") == 3 and group_capacity(ana, "messaging") == 16  # unset: the total
    assert not has_room(ana, "chat") and has_room(ana, "email") and has_room(ana, "messaging")
    assert not eligible(ana, conv(1, group="chat")) and eligible(ana, conv(2, group="email"))
    # Over a group by a manual assignment: nothing new of that group until back under it.
    ana.loads["chat"] = 5
    assert not eligible(ana, conv(3, group="chat"))
    ana.loads["chat"] = 2
    assert eligible(ana, conv(3, group="chat"))


def test_pick_fills_each_group_up_to_its_capacity() -> None:
    ana = agent(1, capacity=10, capacities={"chat": 2, "email": 1})
    picks = pick([conv(i, waited=100 - i, group=g) for i, g in enumerate(["chat"] * 4 + ["email"] * 3)],
                 [ana], NOW, key=POLICIES["least_loaded"](conv(0), NOW))
    assert [p.conversation_id for p in picks] == [0, 1, 4]
    assert ana.loads == {"chat": 2, "email": 1} and ana.active_count == 3


def test_skills_are_required_until_widened() -> None:
    skilled = agent(1, skills={"returns", "b2b"})
    plain = agent(2)
    wants = conv(1, skills=frozenset({"returns"}))
    assert fits(skilled, wants) and not fits(plain, wants)
    assert not fits(skilled, conv(2, skills=frozenset({"returns", "vip"})))  # all of them
    assert fits(plain, conv(3, skills=frozenset({"vip"}), widened=True))
    assert [p.agent_id for p in pick([wants], [plain, skilled], NOW)] == [1]
    assert pick([wants], [plain], NOW) == []  # waits for the skilled one


def test_widening_is_due_after_the_team_wait() -> None:
    since = NOW - timedelta(seconds=widening.SKILL_WAIT_SECONDS)
    assert widening.due(["returns"], since, None, NOW)
    assert not widening.due(["returns"], since + timedelta(seconds=1), None, NOW)
    assert not widening.due(["returns"], since, 300, NOW) and widening.due(["returns"], since, 0, NOW)
    assert not widening.due([], since, None, NOW) and not widening.due(["x"], None, None, NOW)


def test_least_loaded_prefers_spare_capacity() -> None:
    busy, idle = agent(1, load=3), agent(2, load=1)
    assert [p.agent_id for p in pick([conv(1)], [busy, idle], NOW, default=POLICIES["least_loaded"])] == [2]


def test_round_robin_takes_turns_among_agents_with_room_only() -> None:
    full = agent(1, capacity=1, load=1, last=NOW - timedelta(hours=5))  # longest idle, but full
    a2 = agent(2, capacity=3, last=NOW - timedelta(hours=2))
    a3 = agent(3, capacity=3, load=2, last=NOW - timedelta(hours=1))  # busier, yet its turn comes
    convs = [conv(i, waited=100 - i, policy="round_robin") for i in range(5)]
    assert [p.agent_id for p in pick(convs, [full, a2, a3], NOW)] == [2, 3, 2, 2]  # then a3 and a2 are full
    assert full.active_count == 1 and a3.active_count == 3 and a2.active_count == 3


def test_sticky_returns_a_customer_to_their_last_agent() -> None:
    back = dict(policy="sticky", previous_agent_id=1, previous_at=NOW - timedelta(hours=2), sticky_seconds=3 * 3600)
    first, second = agent(1, load=4), agent(2)
    assert [p.agent_id for p in pick([conv(1, **back)], [first, second], NOW)] == [1]  # busier, but theirs


@pytest.mark.parametrize(("change", "why"), [
    ({"presence": "away"}, "not online"),
    ({"active_count": 5}, "no room"),
    ({"loads": {"messaging": 2}, "capacities": {"messaging": 2}}, "no room in the group"),
])
def test_sticky_falls_back_to_least_loaded(change: dict[str, object], why: str) -> None:
    back = dict(policy="sticky", previous_agent_id=1, previous_at=NOW - timedelta(minutes=5))
    first, second, third = agent(1), agent(2, load=2), agent(3, load=1)
    for name, value in change.items():
        setattr(first, name, value)
    assert [p.agent_id for p in pick([conv(1, **back)], [first, second, third], NOW)] == [3], why


def test_sticky_window() -> None:
    old = conv(1, policy="sticky", previous_agent_id=7, previous_at=NOW - timedelta(seconds=STICKY_SECONDS + 1))
    assert returning(old, NOW) is None
    assert returning(conv(1, previous_agent_id=7, previous_at=NOW - timedelta(seconds=59), sticky_seconds=60),
                     NOW) == 7
    assert returning(conv(1, previous_agent_id=7, previous_at=NOW - timedelta(seconds=61), sticky_seconds=60),
                     NOW) is None
    assert returning(conv(1), NOW) is None  # a new customer
    first, second = agent(1, load=2), agent(2)
    stale = conv(2, policy="sticky", previous_agent_id=1, previous_at=NOW - timedelta(days=3))
    assert [p.agent_id for p in pick([stale], [first, second], NOW)] == [2]


def test_team_policy_wins_over_the_router_default() -> None:
    def pair() -> list:
        return [agent(1, load=2, last=NOW - timedelta(hours=3)), agent(2, last=NOW - timedelta(hours=1))]

    assert [p.agent_id for p in decider("round_robin")([conv(1)], pair(), NOW)] == [1]
    assert [p.agent_id for p in decider("round_robin")([conv(1, policy="least_loaded")], pair(), NOW)] == [2]
    assert [p.agent_id for p in decider()([conv(1, policy="round_robin")], pair(), NOW)] == [1]
    assert [p.agent_id for p in decider()([conv(1, policy="no-such")], pair(), NOW)] == [2]  # the default


def test_priority_names() -> None:
    assert [priority_value(n) for n in ("urgent", "high", "normal", "low")] == [3, 1, 0, -1]
    assert priority_value(7) == 7 and priority_name(7) == "urgent" and priority_name(2) == "high"
    assert [priority_name(PRIORITIES[n]) for n in PRIORITIES] == list(PRIORITIES)
    with pytest.raises(ValueError, match="urgent"):
        priority_value("asap")
    line = [conv(1, priority=PRIORITIES["low"], waited=900), conv(2, waited=300), conv(3, waited=30, priority=3),
            conv(4, waited=600)]
    assert [c.id for c in queue(line)] == [3, 4, 2, 1]


def test_position_counts_only_the_same_team_and_group() -> None:
    line = [conv(1, waited=500), conv(2, waited=400, group="email"), conv(3, waited=300, team_id=9),
            conv(4, waited=200), conv(5, waited=100, priority=3), conv(6, waited=50, assignee_id=3)]
    assert [position(c, line) for c in line] == [2, 1, 1, 3, 1, None]


def test_expected_wait() -> None:
    assert expected_wait(1, 2, 600) == 300
    assert expected_wait(4, 2, 600, slots_per_agent=3) == 400
    assert expected_wait(3, 0, 600) is None  # nobody to take it
    assert expected_wait(0, 2, 600) == 0


def test_handling_times_from_the_assignment_log() -> None:
    from collections import namedtuple

    from store.queue_view import handled

    Row = namedtuple("Row", "conversation_id agent_id reason created_at kind")
    log = [Row(1, 5, "routed", NOW, "webchat"), Row(2, 5, "routed", NOW, "email"),
           Row(3, 6, "manual", NOW, "webchat"), Row(3, None, "unassigned", NOW, "webchat"),
           Row(1, 5, "resolved", NOW + timedelta(seconds=300), "webchat"),
           Row(2, 5, "resolved", NOW + timedelta(seconds=900), "email"),
           Row(3, None, "resolved", NOW + timedelta(seconds=50), "webchat"),  # unassigned first: no time
           Row(4, 5, "resolved", NOW, "webchat")]  # taken before the sample: no time
    assert handled(log, "chat") == [300.0] and handled(log, "email") == [900.0] and handled(log, "messaging") == []
