"""The visibility rule has one definition (``router.access.may_see``) and one SQL form for the list
(``store.conversations.visible_to``): on random agents, teams and conversations, on both databases,
the SQL selects exactly the conversations the rule allows."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from sqlalchemy import Engine, select

from router.access import Viewer, may_see
from store import agents as agent_store
from store import conversations as conversation_store
from store.models import utcnow
from store.sql import conversations
from tests.support import channel_and_contact


def _world(engine: Engine, rnd: random.Random) -> tuple[list[Viewer], list[SimpleNamespace]]:
    """Teams, agents in none, one or several of them (some admins), and conversations with every
    mix of assignee and team."""
    team_ids = [agent_store.create_team(engine, f"team {n}") for n in range(4)]
    viewers = []
    for n in range(12):
        role = "admin" if n % 6 == 5 else "agent"
        member = rnd.sample(team_ids, rnd.choice([0, 0, 1, 1, 2]))
        agent_id, _ = agent_store.create_agent(engine, name=f"Agent {n}", email=f"a{n}@shop.test", role=role,
                                               team_ids=member)
        viewers.append(Viewer.of(agent_id, role, member))
    now = utcnow()
    rows = []
    with engine.begin() as conn:
        channel_id, contact_id = channel_and_contact(conn, now, "Shop")
        for _ in range(80):
            assignee = rnd.choice([None, None, *(v.id for v in viewers)])
            team = rnd.choice([None, None, *team_ids])
            conversation_id = conn.execute(conversations.insert().values(
                channel_id=channel_id, contact_id=contact_id, status=rnd.choice(["open", "pending", "resolved"]),
                assignee_id=assignee, team_id=team, priority=0, needs_routing=False, route_attempts=0,
                created_at=now, updated_at=now).returning(conversations.c.id)).scalar_one()
            rows.append(SimpleNamespace(id=conversation_id, assignee_id=assignee, team_id=team))
    return viewers, rows


@pytest.mark.parametrize("seed", [1, 2])
def test_the_sql_form_selects_what_the_rule_allows(store_engine: Engine, seed: int) -> None:
    viewers, rows = _world(store_engine, random.Random(seed))
    shown_something = False
    for viewer in viewers:
        expected = {row.id for row in rows if may_see(viewer, row)}
        assert conversation_store.visible_ids(store_engine, viewer.id, admin=viewer.admin) == expected, viewer
        listed, more = conversation_store.list_visible(store_engine, viewer.id, admin=viewer.admin,
                                                       filters=conversation_store.Filters(), limit=1000)
        assert not more and [r.id for r in listed] == sorted(expected, reverse=True)
        shown_something |= 0 < len(expected) < len(rows)
    assert shown_something  # the world is mixed enough to tell a wrong rule apart


def test_the_rule() -> None:
    """Theirs, their teams', the shared queue; never a colleague's conversation outside their teams."""
    ana = Viewer.of(1, "agent", [10])
    loner = Viewer.of(2, "agent", [])
    boss = Viewer.of(3, "admin", [])

    def conv(assignee: int | None, team: int | None) -> SimpleNamespace:
        return SimpleNamespace(assignee_id=assignee, team_id=team)

    assert may_see(ana, conv(1, None)) and may_see(ana, conv(1, 20))  # hers, whatever the team
    assert may_see(ana, conv(None, 10)) and may_see(ana, conv(9, 10))  # her team's
    assert not may_see(ana, conv(None, 20)) and not may_see(ana, conv(9, 20))  # another team's
    assert may_see(ana, conv(None, None)) and may_see(loner, conv(None, None))  # the shared queue
    assert not may_see(loner, conv(1, None)) and not may_see(ana, conv(2, None))  # a colleague's
    assert all(may_see(boss, conv(a, t)) for a in (None, 1) for t in (None, 10))


def test_the_list_before_this_change_showed_colleagues_conversations(store_engine: Engine) -> None:
    """The case of the issue: an agent without a team, a colleague's conversation of no team."""
    viewers, _ = _world(store_engine, random.Random(3))
    loner = next(v for v in viewers if not v.team_ids and not v.admin)
    with store_engine.connect() as conn:
        colleagues = set(conn.execute(select(conversations.c.id).where(
            conversations.c.team_id.is_(None), conversations.c.assignee_id.is_not(None),
            conversations.c.assignee_id != loner.id)).scalars())
    assert colleagues
    assert not colleagues & conversation_store.visible_ids(store_engine, loner.id, admin=False)
