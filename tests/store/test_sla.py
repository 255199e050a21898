"""SLA clocks, breach events, reassignment and the SLA report, through the store on both
databases, with the router's rules (router.sla, router.reassign)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, select

from connectors.base import Identity, InboundMessage
from router.reassign import sweep_reassign
from router.sla import deadline, report, retarget, sweep_sla
from store import outbound, sla, teams
from store.agents import create_agent, create_team
from store.assignment import assign_manually, resolve, update_conversation
from store.channels import create_channel
from store.events import events
from store.inbound import record_inbound
from store.models import utcnow
from store.sql import agents, assignments, conversations, sla_clocks

CONFIG = {"secret": "a-shared-secret-of-the-shop", "callback_url": "http://127.0.0.1:9/replies"}
FAST = {"near": 0.5, "targets": {"messaging": {"first": 600, "next": 1200}}}  # the API channel: messaging


def _msg(n: int, who: str = "cust-1", **kw: object) -> InboundMessage:
    return InboundMessage(external_id=f"in-{who}-{n}", sender=Identity(who, name="Customer"), text="hello",
                          thread_key=f"t-{who}", **kw)  # type: ignore[arg-type]


def _conv(engine: Engine, conversation_id: int) -> object:
    with engine.connect() as conn:
        return conn.execute(select(conversations).where(conversations.c.id == conversation_id)).one()


def _clocks(engine: Engine, conversation_id: int) -> list:  # type: ignore[type-arg]
    with engine.connect() as conn:
        return conn.execute(select(sla_clocks).where(sla_clocks.c.conversation_id == conversation_id)
                            .order_by(sla_clocks.c.id)).all()


def _events(engine: Engine, type_: str) -> list:  # type: ignore[type-arg]
    with engine.connect() as conn:
        return conn.execute(select(events).where(events.c.type == type_).order_by(events.c.id)).all()


def test_clocks_start_with_the_customer_and_stop_with_the_answer(store_engine: Engine) -> None:
    sla.set_config(store_engine, "sla", FAST)
    channel_id = create_channel(store_engine, "api", "shop", CONFIG)
    [first] = record_inbound(store_engine, channel_id, [_msg(1)], deadline=deadline)
    conv_id = first.conversation_id
    assert conv_id is not None
    conv = _conv(store_engine, conv_id)
    assert conv.first_response_due == conv.waiting_since + timedelta(seconds=600)  # type: ignore[attr-defined]
    record_inbound(store_engine, channel_id, [_msg(2)], deadline=deadline)  # the same wait: no second clock
    [clock] = _clocks(store_engine, conv_id)
    assert (clock.kind, clock.channel_kind, clock.answered_at) == ("first", "api", None)
    assert clock.near_at == clock.started_at + timedelta(seconds=300)
    # An automatic reply (an acknowledgement) and a private note answer nothing.
    outbound.create_reply(store_engine, conv_id, agent_id=None, text="got it", automatic=True)
    outbound.create_reply(store_engine, conv_id, agent_id=None, text="note", private=True)
    assert _clocks(store_engine, conv_id)[0].answered_at is None
    outbound.create_reply(store_engine, conv_id, agent_id=None, text="here is your answer")
    [clock] = _clocks(store_engine, conv_id)
    assert clock.answered_at is not None
    assert _conv(store_engine, conv_id).first_response_due is None  # type: ignore[attr-defined]
    record_inbound(store_engine, channel_id, [_msg(3)], deadline=deadline)  # a new wait: the next response
    clocks = _clocks(store_engine, conv_id)
    assert [c.kind for c in clocks] == ["first", "next"]
    conv = _conv(store_engine, conv_id)
    assert conv.next_response_due == clocks[1].started_at + timedelta(seconds=1200)  # type: ignore[attr-defined]
    assert conv.first_response_due is None  # type: ignore[attr-defined]


def test_sweep_writes_near_breach_and_breach_events_once_each(store_engine: Engine) -> None:
    sla.set_config(store_engine, "sla", FAST)
    channel_id = create_channel(store_engine, "api", "shop", CONFIG)
    [rec] = record_inbound(store_engine, channel_id, [_msg(1)], deadline=deadline)
    start = _conv(store_engine, rec.conversation_id).waiting_since  # type: ignore[arg-type,attr-defined]
    assert sweep_sla(store_engine, start + timedelta(seconds=100)) == ([], [])
    assert sweep_sla(store_engine, start + timedelta(seconds=301)) == ([rec.conversation_id], [])
    assert sweep_sla(store_engine, start + timedelta(seconds=400)) == ([], [])  # once
    assert sweep_sla(store_engine, start + timedelta(seconds=601)) == ([], [rec.conversation_id])
    assert sweep_sla(store_engine, start + timedelta(seconds=5000)) == ([], [])  # once
    assert [e.conversation_id for e in _events(store_engine, "sla.near_breach")] == [rec.conversation_id]
    [breach] = _events(store_engine, "sla.breached")
    assert breach.data["sla_kind"] == "first"
    # An answered conversation, and a resolved one, are never noted; the resolved one's clock ends.
    [other] = record_inbound(store_engine, channel_id, [_msg(1, "cust-2")], deadline=deadline)
    outbound.create_reply(store_engine, other.conversation_id, agent_id=None, text="answer")  # type: ignore[arg-type]
    [gone] = record_inbound(store_engine, channel_id, [_msg(1, "cust-3")], deadline=deadline)
    resolve(store_engine, gone.conversation_id, None)  # type: ignore[arg-type]
    assert sweep_sla(store_engine, utcnow() + timedelta(days=1)) == ([], [])
    [ended] = _clocks(store_engine, gone.conversation_id)  # type: ignore[arg-type]
    assert ended.ended_at is not None and ended.near_noted_at is None and ended.breached_at is None
    # A clock stored without the rule (a script's record_inbound) has none: nothing to note.
    [bare] = record_inbound(store_engine, channel_id, [_msg(1, "cust-4")])
    assert _clocks(store_engine, bare.conversation_id) == []  # type: ignore[arg-type]


def test_reassignment_gives_an_unanswered_conversation_to_the_next_agent_once_per_wait(
        store_engine: Engine) -> None:
    team = create_team(store_engine, "support")
    channel_id = create_channel(store_engine, "api", "shop", CONFIG)
    ana, _ = create_agent(store_engine, name="Ana", email="ana@example.com", team_ids=[team], presence="online")
    biel, _ = create_agent(store_engine, name="Biel", email="biel@example.com", team_ids=[team], presence="online")
    [rec, other] = record_inbound(store_engine, channel_id, [_msg(1), _msg(1, "cust-2")])
    conv_id = rec.conversation_id
    assert conv_id is not None and other.conversation_id is not None
    update_conversation(store_engine, conv_id, {"team_id": team})
    assign_manually(store_engine, conv_id, ana, by=ana)
    assign_manually(store_engine, other.conversation_id, biel, by=biel)  # Biel is busier: least loaded is Ana
    later = utcnow() + timedelta(hours=1)
    assert sweep_reassign(store_engine, later) == {}  # the team has not turned it on
    assert teams.update_team(store_engine, team, None, {"reassign_after": 600.0})
    assert sweep_reassign(store_engine, utcnow() + timedelta(seconds=300)) == {}  # not yet
    assert sweep_reassign(store_engine, later) == {conv_id: biel}  # never back to Ana for this wait
    with store_engine.connect() as conn:
        loads = dict(conn.execute(select(agents.c.id, agents.c.active_count)).all())
        reasons = conn.execute(select(assignments.c.reason, assignments.c.agent_id)
                               .where(assignments.c.conversation_id == conv_id).order_by(assignments.c.id)).all()
    assert loads == {ana: 0, biel: 2}
    assert [tuple(r) for r in reasons] == [("manual", ana), ("reassigned", None), ("routed", biel)]
    [moved] = [e for e in _events(store_engine, "conversation.updated") if e.data.get("reason") == "reassigned"]
    assert moved.agent_id == ana  # addressed to the agent who lost it too
    # Taken back (by hand) during the same wait: not reassigned a second time.
    assign_manually(store_engine, conv_id, ana, by=ana)
    assert sweep_reassign(store_engine, later + timedelta(hours=5)) == {}
    # Answered, then the customer writes again: a new wait may be reassigned again.
    outbound.create_reply(store_engine, conv_id, agent_id=ana, text="answer")
    record_inbound(store_engine, channel_id, [_msg(2)])
    assert sweep_reassign(store_engine, later + timedelta(hours=6)) == {conv_id: biel}


def test_reassignment_with_nobody_else_leaves_it_in_the_queue(store_engine: Engine) -> None:
    team = create_team(store_engine, "solo")
    channel_id = create_channel(store_engine, "api", "shop", CONFIG)
    ana, _ = create_agent(store_engine, name="Ana", email="ana@example.com", team_ids=[team], presence="online")
    teams.update_team(store_engine, team, None, {"reassign_after": 60.0})
    [rec] = record_inbound(store_engine, channel_id, [_msg(1)])
    conv_id = rec.conversation_id
    assert conv_id is not None
    update_conversation(store_engine, conv_id, {"team_id": team})
    assign_manually(store_engine, conv_id, ana, by=ana)
    assert sweep_reassign(store_engine, utcnow() + timedelta(hours=1)) == {conv_id: None}
    conv = _conv(store_engine, conv_id)
    assert (conv.assignee_id, conv.needs_routing, conv.status) == (None, False, "open")  # type: ignore[attr-defined]
    assert conv.waiting_since is not None  # type: ignore[attr-defined]  # keeps its place in the queue


def test_reassignment_counts_business_hours(store_engine: Engine) -> None:
    team = create_team(store_engine, "weekdays")
    channel_id = create_channel(store_engine, "api", "shop", CONFIG)
    ana, _ = create_agent(store_engine, name="Ana", email="ana@example.com", team_ids=[team], presence="online")
    closed_today = {"timezone": "UTC", "week": {}}  # never open: no business time passes
    teams.update_team(store_engine, team, None, {"reassign_after": 60.0, "hours": closed_today})
    [rec] = record_inbound(store_engine, channel_id, [_msg(1)])
    update_conversation(store_engine, rec.conversation_id, {"team_id": team})  # type: ignore[arg-type]
    assign_manually(store_engine, rec.conversation_id, ana, by=ana)  # type: ignore[arg-type]
    assert sweep_reassign(store_engine, utcnow() + timedelta(days=3)) == {}


def test_sla_report_counts_met_breached_near_and_median(store_engine: Engine) -> None:
    sla.set_config(store_engine, "sla", FAST)
    channel_id = create_channel(store_engine, "api", "shop", CONFIG)
    ids = [record_inbound(store_engine, channel_id, [_msg(1, f"c{n}")], deadline=deadline)[0].conversation_id
           for n in range(3)]
    outbound.create_reply(store_engine, ids[0], agent_id=None, text="fast")  # type: ignore[arg-type]
    # The second: warned, then breached, then answered late; the third: breached, never answered.
    back = timedelta(seconds=700)
    with store_engine.begin() as conn:
        for conv_id in ids[1:]:
            clock = conn.execute(select(sla_clocks).where(sla_clocks.c.conversation_id == conv_id)).one()
            conn.execute(sla_clocks.update().where(sla_clocks.c.id == clock.id).values(
                started_at=clock.started_at - back, near_at=clock.near_at - back, due_at=clock.due_at - back))
            conn.execute(conversations.update().where(conversations.c.id == conv_id)
                         .values(waiting_since=clock.started_at - back))
    assert sorted(sweep_sla(store_engine)[1]) == sorted(ids[1:])
    outbound.create_reply(store_engine, ids[1], agent_id=None, text="late")  # type: ignore[arg-type]
    # A fourth resolved unanswered before its due time, a fifth still running.
    [gone, _running] = [record_inbound(store_engine, channel_id, [_msg(1, who)], deadline=deadline)[0].conversation_id
                       for who in ("c-gone", "c-running")]
    resolve(store_engine, gone, None)  # type: ignore[arg-type]
    with store_engine.begin() as conn:  # its warning time has come (the sweep then finds it ended)
        conn.execute(sla_clocks.update().where(sla_clocks.c.conversation_id == gone)
                     .values(near_at=datetime(2000, 1, 1)))
    sweep_sla(store_engine)
    now = utcnow()
    [row] = report(sla.clocks_between(store_engine, now - timedelta(days=1), now + timedelta(days=1)), now)
    assert (row["channel_kind"], row["priority"]) == ("api", 0)
    assert (row["met"], row["breached"], row["near_breach"], row["open"], row["unanswered"]) == (1, 2, 2, 1, 1)
    assert row["median_first_response_seconds"] is not None and row["median_first_response_seconds"] > 300
    assert report(sla.clocks_between(store_engine, now + timedelta(days=1), now + timedelta(days=2)), now) == []


def test_report_of_an_open_clock_not_yet_due() -> None:
    start = datetime(2026, 11, 30, 9, 0)

    class Clock:
        kind, channel_kind, priority, started_at = "first", "email", 0, start
        due_at, answered_at, ended_at, near_noted_at, breached_at = start + timedelta(hours=1), None, None, None, None

    [row] = report([Clock()], start + timedelta(minutes=5))
    assert (row["met"], row["breached"], row["open"], row["median_first_response_seconds"]) == (0, 0, 1, None)
    [row] = report([Clock()], start + timedelta(hours=2))  # past due, unanswered: breached
    assert (row["breached"], row["open"]) == (1, 0)


def test_a_new_priority_or_team_retargets_the_running_clock(store_engine: Engine) -> None:
    sla.set_config(store_engine, "sla", {"targets": {"messaging": {"first": 3600}, "messaging:5": {"first": 600}}})
    channel_id = create_channel(store_engine, "api", "shop", CONFIG)
    [rec] = record_inbound(store_engine, channel_id, [_msg(1)], deadline=deadline)
    conv_id = rec.conversation_id
    assert conv_id is not None
    start = _conv(store_engine, conv_id).waiting_since  # type: ignore[attr-defined]
    assert _conv(store_engine, conv_id).first_response_due == start + timedelta(hours=1)  # type: ignore[attr-defined]
    update_conversation(store_engine, conv_id, {"priority": 5})
    assert retarget(store_engine, conv_id)
    [clock] = _clocks(store_engine, conv_id)
    assert (clock.priority, clock.due_at) == (5, start + timedelta(seconds=600))
    assert _conv(store_engine, conv_id).first_response_due == start + timedelta(seconds=600)  # type: ignore[attr-defined]
    # A team whose hours never open: the target can never be reached, no due time.
    team = create_team(store_engine, "never")
    teams.update_team(store_engine, team, None, {"hours": {"timezone": "UTC", "week": {}}})
    update_conversation(store_engine, conv_id, {"team_id": team})
    assert retarget(store_engine, conv_id)
    assert _conv(store_engine, conv_id).first_response_due is None  # type: ignore[attr-defined]
    outbound.create_reply(store_engine, conv_id, agent_id=None, text="answered")
    assert not retarget(store_engine, conv_id)  # nothing running


def test_the_scheduler_sweep_notes_breaches_and_reassigns(store_engine: Engine) -> None:
    import workers

    workers.setup_broker(None)  # the sweep rings jobs; a broker of this process's own
    team = create_team(store_engine, "support")
    channel_id = create_channel(store_engine, "api", "shop", CONFIG)
    ana, _ = create_agent(store_engine, name="Ana", email="ana@example.com", team_ids=[team], presence="online")
    teams.update_team(store_engine, team, None, {"reassign_after": 60.0})
    [rec] = record_inbound(store_engine, channel_id, [_msg(1)], deadline=deadline)
    conv_id = rec.conversation_id
    assert conv_id is not None
    update_conversation(store_engine, conv_id, {"team_id": team})
    assign_manually(store_engine, conv_id, ana, by=ana)
    back = timedelta(hours=2)
    with store_engine.begin() as conn:  # the customer has waited two hours; Ana took it then
        clock = conn.execute(select(sla_clocks)).one()
        conn.execute(sla_clocks.update().values(started_at=clock.started_at - back, near_at=clock.near_at - back,
                                                due_at=clock.due_at - back))
        conn.execute(conversations.update().values(waiting_since=clock.started_at - back))
        conn.execute(assignments.update().values(created_at=clock.started_at - back))
    workers.sweep()
    assert [e.conversation_id for e in _events(store_engine, "sla.breached")] == [conv_id]
    assert _conv(store_engine, conv_id).reassigned_wait is not None  # type: ignore[attr-defined]
    assert _conv(store_engine, conv_id).assignee_id is None  # type: ignore[attr-defined]  # nobody else: queued
