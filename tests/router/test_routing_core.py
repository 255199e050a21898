"""The routing core through the store, on SQLite and PostgreSQL: capacity per group of channel
kinds with team defaults, required skills and their widening, team policies (sticky), an away
agent's conversations returned where the team says so."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from router import widening
from router.presence import sweep_away
from router.route import fill_agent, route_conversations
from store import assignment
from store.models import utcnow
from store.sql import agents, assignments, channels, contacts, conversations, messages, teams
from tests.router.test_routing import _agent, _team, _waiting, _world

c = conversations.c


def _channel(engine: Engine, kind: str) -> int:
    now = utcnow()
    with engine.begin() as conn:
        return conn.execute(channels.insert().values(kind=kind, name=kind, config={}, enabled=True, status="ok",
                                                     error_count=0, created_at=now, updated_at=now)
                            .returning(channels.c.id)).scalar_one()


def _set(engine: Engine, table: Any, row_id: int, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(update(table).where(table.c.id == row_id).values(**values))


def _holders(engine: Engine, ids: list[int]) -> list[int | None]:
    with engine.connect() as conn:
        held = dict(conn.execute(select(c.id, c.assignee_id).where(c.id.in_(ids))).all())
    return [held[i] for i in ids]


def test_capacity_per_group_with_the_team_default(store_engine: Engine) -> None:
    engine = store_engine
    world = _world(engine)
    email = (_channel(engine, "email"), world[1])
    chat = (_channel(engine, "webchat"), world[1])
    team = _team(engine, "Support")
    _set(engine, teams, team, capacities={"chat": 1, "email": 3})
    ana = _agent(engine, "Ana", capacity=10, team_ids=[team])
    _set(engine, agents, ana, capacities={"email": 2})  # her own wins over the team's 3
    chats = _waiting(engine, chat, 3, team_id=team)
    mails = _waiting(engine, email, 3, team_id=team)
    outcomes = route_conversations(engine, chats + mails)
    assert [o.agent_id for o in outcomes] == [ana, None, None, ana, ana, None]
    # A manual assignment may go over: then nothing new of that group until back under it.
    assignment.assign_manually(engine, chats[1], ana, by=ana)
    assignment.resolve(engine, chats[0], by=ana)
    assert fill_agent(engine, ana) == []  # chat: 1 held of 1 (after 2 of 1); email full
    assignment.resolve(engine, chats[1], by=ana)
    assignment.resolve(engine, mails[0], by=ana)
    assert sorted(fill_agent(engine, ana)) == sorted([chats[2], mails[2]])
    with engine.connect() as conn:
        assert conn.execute(select(agents.c.active_count).where(agents.c.id == ana)).scalar_one() == 3


def test_skills_then_widening_with_a_note(store_engine: Engine) -> None:
    engine = store_engine
    world = _world(engine)
    team = _team(engine, "Returns")
    _set(engine, teams, team, skill_wait_seconds=60)
    plain = _agent(engine, "Plain", team_ids=[team])
    skilled = _agent(engine, "Skilled", team_ids=[team], presence="away")
    _set(engine, agents, skilled, skills=["returns", "b2b"])
    long_ago = utcnow() - timedelta(seconds=61)
    old, new = _waiting(engine, world, 2, team_id=team, skills=["returns"])
    _set(engine, conversations, old, waiting_since=long_ago)
    _set(engine, conversations, new, waiting_since=utcnow() - timedelta(seconds=5))
    none = _waiting(engine, world, 1, team_id=team, skills=None)[0]
    assert [o.agent_id for o in route_conversations(engine, [old, new, none])] == [None, None, plain]
    assert widening.sweep_skills(engine) == [old]  # the other has not waited 60 s yet
    assert widening.sweep_skills(engine) == []  # once
    assert [o.agent_id for o in route_conversations(engine, [old, new])] == [plain, None]
    with engine.connect() as conn:
        notes = conn.execute(select(messages.c.text, messages.c.private).where(messages.c.conversation_id == old)).all()
    assert len(notes) == 1 and notes[0].private and "returns" in notes[0].text
    _set(engine, agents, skilled, presence="online")
    assert fill_agent(engine, skilled) == [new]


def test_sticky_team_sends_a_returning_customer_to_their_agent(store_engine: Engine) -> None:
    engine = store_engine
    world = _world(engine)
    with engine.begin() as conn:
        other = (world[0], conn.execute(contacts.insert().values(name="O", created_at=utcnow())
                                        .returning(contacts.c.id)).scalar_one())
    team = _team(engine, "Sticky")
    _set(engine, teams, team, policy="sticky", sticky_seconds=3600)
    first = _agent(engine, "First", team_ids=[team])
    second = _agent(engine, "Second", team_ids=[team])
    earlier = _waiting(engine, world, 1, team_id=team)[0]
    assignment.assign_manually(engine, earlier, first, by=first)
    assignment.resolve(engine, earlier, by=first)
    for _ in range(2):  # First is the busier one, with another customer's conversations
        assignment.assign_manually(engine, _waiting(engine, other, 1)[0], first, by=first)
    again = _waiting(engine, world, 1, team_id=team)[0]
    assert route_conversations(engine, [again])[0].agent_id == first  # back to the agent who helped
    assignment.resolve(engine, again, by=first)
    hours_ago = utcnow() - timedelta(hours=2)
    with engine.begin() as conn:  # both of that customer's conversations moved last two hours ago
        conn.execute(update(conversations).where(c.id.in_([earlier, again]))
                     .values(last_message_at=hours_ago, updated_at=hours_ago))
    later = _waiting(engine, world, 1, team_id=team)[0]
    assert route_conversations(engine, [later])[0].agent_id == second  # out of the window: least loaded


def test_return_on_away(store_engine: Engine) -> None:
    engine = store_engine
    world = _world(engine)
    giving = _team(engine, "Chat")
    keeping = _team(engine, "Mail")
    _set(engine, teams, giving, return_on_away=True)
    ana = _agent(engine, "Ana", team_ids=[giving, keeping])
    given = _waiting(engine, world, 2, team_id=giving)
    kept = _waiting(engine, world, 1, team_id=keeping) + _waiting(engine, world, 1)
    assert [o.agent_id for o in route_conversations(engine, given + kept)] == [ana] * 4
    assignment.update_conversation(engine, given[1], {"status": "pending"})  # not open: stays
    _set(engine, agents, ana, last_seen_at=utcnow() - timedelta(minutes=10))
    assert sweep_away(engine, 90) == [given[0]]
    assert _holders(engine, given + kept) == [None, ana, ana, ana]
    with engine.connect() as conn:
        row = conn.execute(select(agents.c.active_count, agents.c.presence).where(agents.c.id == ana)).one()
        reasons = conn.execute(select(assignments.c.reason).where(assignments.c.conversation_id == given[0])
                               ).scalars().all()
        waiting = conn.execute(select(c.needs_routing, c.waiting_since).where(c.id == given[0])).one()
    assert (row.active_count, row.presence) == (3, "away") and reasons[-1] == "away"
    assert waiting.needs_routing and waiting.waiting_since is not None
    assert sweep_away(engine, 90) == []  # already away: nothing more
