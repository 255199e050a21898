"""An agent's own settings in the store, on SQLite and PostgreSQL: heartbeats and the sweep that
sets silent inboxes away (a heartbeat meanwhile wins), password changes ending the other sessions,
canned responses (duplicate shortcuts) and their placeholders."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from router.presence import stale, sweep_presence
from store import agents as agent_store
from store import canned, events, sessions
from store.models import utcnow
from store.sql import agents, contacts, conversations
from tests.support import channel_and_contact

PASSWORD = "correct horse battery"


def _agent(engine: Engine, name: str, **kw: Any) -> int:
    return agent_store.create_agent(engine, name=name, email=f"{name.lower()}@shop.test", **kw)[0]


def _presence(engine: Engine, agent_id: int) -> str:
    with engine.connect() as conn:
        return conn.execute(select(agents.c.presence).where(agents.c.id == agent_id)).scalar_one()


def _seen(engine: Engine, agent_id: int, seconds_ago: float) -> None:
    with engine.begin() as conn:
        conn.execute(update(agents).where(agents.c.id == agent_id)
                     .values(last_seen_at=utcnow() - timedelta(seconds=seconds_ago)))


def test_silent_inboxes_go_away(store_engine: Engine) -> None:
    engine = store_engine
    beating, silent, integration = _agent(engine, "Ana"), _agent(engine, "Joan"), _agent(engine, "Bot")
    assert agent_store.heartbeat(engine, beating, "online") is True  # came online: the caller pulls
    assert agent_store.heartbeat(engine, beating, "online") is False  # no change, no second event
    agent_store.heartbeat(engine, silent, "online")
    agent_store.set_presence(engine, integration, "online")  # PUT presence, never a heartbeat
    _seen(engine, silent, 200)
    after = events.head(engine)

    assert sweep_presence(engine, 90) == [silent]
    assert [_presence(engine, a) for a in (beating, silent, integration)] == ["online", "away", "online"]
    [row] = events.Reader(engine, after, agent_id=beating, admin=False).read()
    assert (row.type, row.agent_id, row.data) == ("agent.presence", silent, {"presence": "away"})
    assert sweep_presence(engine, 90) == []  # away stays away


@pytest.mark.parametrize("backend", ["postgres"])  # SQLite's sweep holds the write lock: no beat can come between
def test_a_heartbeat_during_the_sweep_wins(store_engine: Engine) -> None:
    engine = store_engine
    ana = _agent(engine, "Ana")
    agent_store.heartbeat(engine, ana, "online")
    _seen(engine, ana, 200)

    def beat_meanwhile(presence: str, seen: Any, now: Any) -> bool:
        decided = stale(presence, seen, now, timeout=timedelta(seconds=90))
        agent_store.heartbeat(engine, ana)  # the page beats after the sweep read, before it writes
        return decided

    assert agent_store.away_if_stale(engine, beat_meanwhile) == []
    assert _presence(engine, ana) == "online"


def test_password_change_ends_the_other_sessions(store_engine: Engine) -> None:
    engine = store_engine
    ana = _agent(engine, "Ana", password=PASSWORD)
    here = sessions.sign_in(engine, "ana@shop.test", PASSWORD, "10.0.0.1")
    there = sessions.sign_in(engine, "ana@shop.test", PASSWORD, "10.0.0.2")
    assert here is not None and there is not None

    assert agent_store.change_password(engine, ana, "wrong password!", "a new password 1", keep_session=here.token) \
        is False
    assert sessions.current(engine, there.token) is not None  # nothing changed
    with pytest.raises(ValueError, match="at least"):
        agent_store.change_password(engine, ana, PASSWORD, "short", keep_session=here.token)

    assert agent_store.change_password(engine, ana, PASSWORD, "a new password 1", keep_session=here.token)
    assert sessions.current(engine, here.token) is not None
    assert sessions.current(engine, there.token) is None
    assert sessions.sign_in(engine, "ana@shop.test", PASSWORD, "10.0.0.3") is None
    assert sessions.sign_in(engine, "ana@shop.test", "a new password 1", "10.0.0.3") is not None


def test_canned_responses_and_placeholders(store_engine: Engine) -> None:
    engine = store_engine
    ana = _agent(engine, "Ana Puig")
    with engine.begin() as conn:
        channel, contact = channel_and_contact(conn, utcnow())
        conn.execute(update(contacts).where(contacts.c.id == contact).values(name="Marta Vila", email=None))
        now = utcnow()
        conv = conn.execute(conversations.insert().values(
            channel_id=channel, contact_id=contact, status="open", priority=0, needs_routing=False,
            route_attempts=0, created_at=now, updated_at=now).returning(conversations.c.id)).scalar_one()
    first = canned.create(engine, shortcut="hi", title="Hello", text="Hola {{contact.first_name}}!", created_by=ana)
    canned.create(engine, shortcut="bye", title="Bye", text="Adeu, {{ agent.first_name }}", created_by=ana)
    with pytest.raises(canned.DuplicateShortcut):
        canned.create(engine, shortcut="hi", title="Again", text="x", created_by=ana)
    with pytest.raises(canned.DuplicateShortcut):
        canned.change(engine, first, {"shortcut": "bye"})
    assert [r.shortcut for r in canned.listing(engine, "HOLA")] == ["hi"]
    assert [r.shortcut for r in canned.listing(engine, "%")] == []  # a wildcard is searched as itself

    values = canned.values_for(engine, conv, ana)
    text = ("{{contact.name}} / {{contact.first_name}} / [{{contact.email}}] / #{{conversation.number}} / "
            "{{agent.name}} / {{agent.first_name}} / {{order.id}} / {{contact.nope}} / {contact.name}")
    assert canned.render(text, values) == (f"Marta Vila / Marta / [] / #{conv} / Ana Puig / Ana / {{{{order.id}}}} / "
                                           "{{contact.nope}} / {contact.name}")
    assert canned.render("Hola {{contact.first_name}}!", {}) == "Hola !"  # no value: empty
