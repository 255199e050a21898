"""The automations before assignment, through the store on SQLite and PostgreSQL: the customer's
language detected and routed on, the admins' rules setting team, priority, skills and tags in
the transaction before the assignment, each rule applied an event, each message seen once."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import Engine, select, update

from connectors.base import Identity, InboundMessage
from router.route import route_conversations
from router.rules import PRIORITIES
from store import agents as agent_store
from store import assignment
from store import rules as rule_store
from store.events import events
from store.inbound import record_inbound
from store.models import utcnow
from store.sql import agents, contacts, conversations, tags, teams
from tests.support import channel_and_contact

c = conversations.c
_ids = itertools.count(1)


def _channel(engine: Engine) -> int:
    with engine.begin() as conn:
        return channel_and_contact(conn, utcnow(), "shop")[0]


def _write(engine: Engine, channel_id: int, text: str, *, who: str = "c1", email: str | None = None) -> int:
    """A customer message on the customer's chat; its conversation id, routed."""
    msg = InboundMessage(external_id=f"m{next(_ids)}", sender=Identity(who, name=who, email=email), text=text,
                         thread_key=f"chat-{who}")
    [recorded] = record_inbound(engine, channel_id, [msg])
    route_conversations(engine, [recorded.conversation_id])
    assert recorded.conversation_id is not None
    return recorded.conversation_id


def _unrouted(engine: Engine, channel_id: int, text: str, *, who: str) -> int:
    """A customer message on the customer's chat, stored and not routed yet: its conversation id."""
    msg = InboundMessage(external_id=f"m{next(_ids)}", sender=Identity(who), text=text, thread_key=f"chat-{who}")
    [recorded] = record_inbound(engine, channel_id, [msg])
    assert recorded.conversation_id is not None and recorded.needs_routing
    return recorded.conversation_id


def _conv(engine: Engine, conv_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(conversations).where(c.id == conv_id)).one()


def _events(engine: Engine, conv_id: int, type_: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [row.data for row in conn.execute(select(events.c.data).where(
            events.c.conversation_id == conv_id, events.c.type == type_).order_by(events.c.id))]


def _tags(engine: Engine, conv_id: int) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(tags.c.tag).where(tags.c.conversation_id == conv_id)).scalars())


def test_the_detected_language_is_set_and_routed_on(store_engine: Engine) -> None:
    engine = store_engine
    catalan, = agent_store.create_agent(engine, name="Jordi", email="jordi@shop.test", languages=["ca"],
                                        presence="online")[:1]
    spanish, = agent_store.create_agent(engine, name="Lucía", email="lucia@shop.test", languages=["es"],
                                        presence="online")[:1]
    channel_id = _channel(engine)
    conv_id = _write(engine, channel_id, "Hola, ¿dónde está mi pedido? Todavía no ha llegado")
    row = _conv(engine, conv_id)
    assert (row.language, row.language_source, row.assignee_id) == ("es", "detected", spanish)
    other = _write(engine, channel_id, "Hola, on és la meva comanda? Encara no ha arribat", who="c2")
    assert (_conv(engine, other).language, _conv(engine, other).assignee_id) == ("ca", catalan)
    assert _events(engine, conv_id, "conversation.updated")[0]["language"] == "es"


def test_short_messages_keep_the_language_and_a_persons_choice_stays(store_engine: Engine) -> None:
    engine = store_engine
    channel_id = _channel(engine)
    conv_id = _write(engine, channel_id, "ok")
    assert _conv(engine, conv_id).language is None  # nothing to tell from
    _write(engine, channel_id, "Olá, onde está a minha encomenda?")
    assert _conv(engine, conv_id).language == "pt"
    assignment.update_conversation(engine, conv_id, {"language": "es"})  # an agent knows better
    assert _conv(engine, conv_id).language_source == "manual"
    _write(engine, channel_id, "Ainda não recebi o pacote, quando chega?")
    assert _conv(engine, conv_id).language == "es"
    assignment.update_conversation(engine, conv_id, {"language": ""})  # cleared: detection may set it again
    _write(engine, channel_id, "Ainda não recebi o pacote, quando chega?")
    assert (_conv(engine, conv_id).language, _conv(engine, conv_id).language_source) == ("pt", "detected")


def test_rules_set_team_priority_skill_and_tag_before_the_assignment(store_engine: Engine) -> None:
    engine = store_engine
    with engine.begin() as conn:
        b2b = conn.execute(teams.insert().values(name="B2B").returning(teams.c.id)).scalar_one()
    outsider = agent_store.create_agent(engine, name="Ann", email="ann@shop.test", presence="online", capacity=9)[0]
    # Of the team, with the skill the rule asks for (a member without it waits for the skill wait).
    agent_store.create_agent(engine, name="Cai", email="cai@shop.test", presence="online", capacity=9, team_ids=[b2b])
    member = agent_store.create_agent(engine, name="Ben", email="ben@shop.test", presence="online", capacity=1,
                                      team_ids=[b2b], skills=["B2B"])[0]
    rule = rule_store.create_rule(
        engine, name="B2B refunds",
        conditions=[{"type": "words", "any": ["reembolso", "refund"]},
                    {"type": "contact", "attribute": "email_domain", "equals": "bigco.example"}],
        actions=[{"type": "set_team", "team_id": b2b}, {"type": "set_priority", "value": "urgent"},
                 {"type": "add_skill", "value": "B2B"}, {"type": "add_tag", "value": "refund"}])
    rule_store.create_rule(engine, name="off", enabled=False, conditions=[],
                           actions=[{"type": "add_tag", "value": "never"}])
    channel_id = _channel(engine)
    conv_id = _write(engine, channel_id, "Necesito el REEMBOLSO del pedido 4411", email="Eva@BigCo.example")
    row = _conv(engine, conv_id)
    assert (row.team_id, row.priority, row.skills, row.assignee_id) == (b2b, PRIORITIES["urgent"], ["B2B"], member)
    assert _tags(engine, conv_id) == ["refund"]
    [applied] = _events(engine, conv_id, "rule.applied")
    assert applied["rule_id"] == rule.id and applied["rule"] == "B2B refunds"
    assert {"type": "add_tag", "value": "refund"} in applied["actions"]
    # The same words from another domain: no rule, so anyone may take it.
    plain = _write(engine, channel_id, "Necesito el reembolso", who="c9", email="pau@else.example")
    assert (_conv(engine, plain).team_id, _conv(engine, plain).assignee_id, _tags(engine, plain)) == (
        None, outsider, [])


def test_each_message_is_seen_once_and_rules_read_the_new_text(store_engine: Engine) -> None:
    engine = store_engine
    rule_store.create_rule(engine, name="complaint", conditions=[{"type": "words", "any": ["queja"]}],
                           actions=[{"type": "add_tag", "value": "complaint"}])
    rule_store.create_rule(engine, name="invoice", conditions=[{"type": "words", "any": ["factura"]}],
                           actions=[{"type": "add_tag", "value": "invoice"}])
    channel_id = _channel(engine)
    conv_id = _write(engine, channel_id, "Quiero poner una queja")
    assert [e["rule"] for e in _events(engine, conv_id, "rule.applied")] == ["complaint"]
    with engine.begin() as conn:  # back to the queue, nothing new from the customer
        conn.execute(update(conversations).where(c.id == conv_id).values(needs_routing=True))
    route_conversations(engine, [conv_id])
    assert [e["rule"] for e in _events(engine, conv_id, "rule.applied")] == ["complaint"]
    _write(engine, channel_id, "Y también necesito la factura")
    assert [e["rule"] for e in _events(engine, conv_id, "rule.applied")] == ["complaint", "invoice"]
    assert _tags(engine, conv_id) == ["complaint", "invoice"]


def test_custom_contact_attributes_and_an_invalid_stored_rule(store_engine: Engine) -> None:
    engine = store_engine
    rule_store.create_rule(engine, name="broken", conditions=[{"type": "moon_phase", "is": "full"}],
                           actions=[{"type": "add_tag", "value": "x"}])  # stored by hand: skipped, not fatal
    rule_store.create_rule(engine, name="gold", conditions=[{"type": "contact", "attribute": "tier", "equals": "Gold"}],
                           actions=[{"type": "set_priority", "value": "high"}])
    channel_id = _channel(engine)
    conv_id = _write(engine, channel_id, "Hello, where is my order?")
    assert _conv(engine, conv_id).priority == 0
    contact_id = _conv(engine, conv_id).contact_id
    with engine.begin() as conn:
        conn.execute(update(contacts).where(contacts.c.id == contact_id).values(attributes={"tier": "gold"}))
    _write(engine, channel_id, "Any news about my order?")
    assert _conv(engine, conv_id).priority == PRIORITIES["high"]
    assert [e["rule"] for e in _events(engine, conv_id, "rule.applied")] == ["gold"]


def test_a_change_made_while_deciding_wins_and_the_message_is_seen_again(store_engine: Engine) -> None:
    from router.automation import automate
    from store.automation import run_automations

    engine = store_engine
    channel_id = _channel(engine)
    conv_id = _unrouted(engine, channel_id, "Hola, ¿dónde está mi pedido?", who="r1")

    def meanwhile(facts: Any, rows: Any, now: Any) -> Any:
        assignment.update_conversation(engine, conv_id, {"language": "ca"})  # an agent, while we decide
        return automate(facts, rows, now)

    done = run_automations(engine, [conv_id], meanwhile)
    assert (done.written, done.held) == ({}, (conv_id,))
    row = _conv(engine, conv_id)
    assert (row.language, row.language_source, row.automated_through) == ("ca", "manual", None)
    route_conversations(engine, [conv_id])  # the next attempt sees the message, and keeps the agent's choice
    row = _conv(engine, conv_id)
    assert row.language == "ca" and row.automated_through is not None


def test_a_conversation_whose_rules_could_not_run_is_not_assigned_unsorted(
        store_engine: Engine, monkeypatch: Any) -> None:
    """Another transaction changed the conversation while its automations decided (an agent set
    its priority; an acknowledgement's claim holding the row does the same on PostgreSQL): its
    rules were not written, so it is not assigned now, to an agent the rules would have ruled
    out, nor queued as sorted: it keeps needing routing, and the next attempt sorts and assigns it."""
    import router.automation
    from store.assignment_batch import HELD

    engine = store_engine
    with engine.begin() as conn:
        wholesale = conn.execute(teams.insert().values(name="Wholesale").returning(teams.c.id)).scalar_one()
    agent_store.create_agent(engine, name="Gina", email="gina@shop.test", presence="online", capacity=9)
    member = agent_store.create_agent(engine, name="Wes", email="wes@shop.test", presence="online", capacity=9,
                                      team_ids=[wholesale])[0]
    rule_store.create_rule(engine, name="B2B", conditions=[{"type": "words", "any": ["palet", "palets"]}],
                           actions=[{"type": "set_team", "team_id": wholesale}])
    channel_id = _channel(engine)
    conv_id = _unrouted(engine, channel_id, "Quiero pedir diez palets de aceite", who="h1")
    decide = router.automation.automate
    calls = itertools.count()

    def meanwhile(*args: Any, **kw: Any) -> Any:
        if next(calls) == 0:
            assignment.update_conversation(engine, conv_id, {"priority": PRIORITIES["high"]})  # an agent, meanwhile
        return decide(*args, **kw)

    monkeypatch.setattr(router.automation, "automate", meanwhile)
    [outcome] = route_conversations(engine, [conv_id])
    assert (outcome.agent_id, outcome.skipped) == (None, HELD)
    row = _conv(engine, conv_id)
    assert (row.assignee_id, row.team_id, row.needs_routing, row.language) == (None, None, True, None)
    [outcome] = route_conversations(engine, [conv_id])  # the worker's next attempt
    row = _conv(engine, conv_id)
    assert (outcome.agent_id, row.assignee_id, row.team_id) == (member, member, wholesale)
    assert (row.language, row.priority, row.needs_routing) == ("es", PRIORITIES["high"], False)


def test_an_agent_coming_online_pulls_no_conversation_whose_routing_has_not_run(store_engine: Engine) -> None:
    """A message just stored waits for its routing job (its language and rules not yet run): an
    agent who comes online meanwhile does not pull it unsorted; the job then sorts it and gives it
    to the agent its rule says. Once routed and waiting, it is pulled as before."""
    from router.route import fill_agent

    engine = store_engine
    with engine.begin() as conn:
        wholesale = conn.execute(teams.insert().values(name="Wholesale").returning(teams.c.id)).scalar_one()
    rule_store.create_rule(engine, name="B2B", conditions=[{"type": "words", "any": ["palets"]}],
                           actions=[{"type": "set_team", "team_id": wholesale}])
    gina = agent_store.create_agent(engine, name="Gina", email="gina@shop.test", presence="online", capacity=9)[0]
    channel_id = _channel(engine)
    msg = InboundMessage(external_id="pull-1", sender=Identity("p1"), text="Necesito veinte palets de aceite",
                         thread_key="chat-p1")
    [recorded] = record_inbound(engine, channel_id, [msg])
    assert recorded.conversation_id is not None and recorded.needs_routing
    assert fill_agent(engine, gina) == []  # came online before the routing job ran
    member = agent_store.create_agent(engine, name="Wes", email="wes@shop.test", presence="online", capacity=9,
                                      team_ids=[wholesale])[0]
    route_conversations(engine, [recorded.conversation_id])
    row = _conv(engine, recorded.conversation_id)
    assert (row.team_id, row.assignee_id) == (wholesale, member)
    # Routed while nobody could take it, it waits in the queue, and an agent with room pulls it.
    plain = InboundMessage(external_id="pull-2", sender=Identity("p2"), text="Hola, una pregunta", thread_key="chat-p2")
    with engine.begin() as conn:
        conn.execute(update(agents).where(agents.c.id.in_([gina, member])).values(presence="offline"))
    [queued] = record_inbound(engine, channel_id, [plain])
    route_conversations(engine, [queued.conversation_id])
    assert _conv(engine, queued.conversation_id).assignee_id is None
    with engine.begin() as conn:
        conn.execute(update(agents).where(agents.c.id == gina).values(presence="online"))
    assert fill_agent(engine, gina) == [queued.conversation_id]


def test_a_rule_that_sets_the_priority_moves_the_running_sla_clock(store_engine: Engine) -> None:
    from datetime import timedelta

    from router.sla import deadline, validate
    from store.sla import set_config

    engine = store_engine
    set_config(engine, "sla", validate({"targets": {"messaging:3": {"first": 60}}}))  # urgent: a minute
    rule_store.create_rule(engine, name="urgent", conditions=[{"type": "words", "any": ["urgente"]}],
                           actions=[{"type": "set_priority", "value": "urgent"}])
    channel_id = _channel(engine)
    msg = InboundMessage(external_id=f"m{next(_ids)}", sender=Identity("c9", name="c9"), text="Es urgente, por favor",
                         thread_key="chat-c9")
    [recorded] = record_inbound(engine, channel_id, [msg], deadline=deadline)
    conv_id = recorded.conversation_id
    before = _conv(engine, conv_id)
    assert before.first_response_due == before.waiting_since + timedelta(hours=1)  # messaging's default
    route_conversations(engine, [conv_id])
    after = _conv(engine, conv_id)
    assert after.priority == PRIORITIES["urgent"]
    assert after.first_response_due == before.waiting_since + timedelta(seconds=60)
