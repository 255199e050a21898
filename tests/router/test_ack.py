"""Automatic acknowledgements (router.ack) through the store on both databases: outside business
hours the next opening in the customer's language, within them only a long wait; once per
period; never to automatic mail, outside a reply window or to an unreachable customer."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, select

import connectors
from connectors.base import Identity, InboundMessage, ReachabilityUpdate
from router.ack import acknowledge, compose, live_wait
from router.hours import DAYS
from store import sla
from store.acks import AckState
from store.assignment import update_conversation
from store.channels import create_channel
from store.inbound import record_inbound
from store.models import utcnow
from store.sql import conversations, messages

CONFIG = {"secret": "a-shared-secret-of-the-shop", "callback_url": "http://127.0.0.1:9/replies"}
DAY = timedelta(hours=24)
MONDAYS = {"timezone": "Europe/Madrid", "week": {"mon": [["09:00", "18:00"]]}}
SUNDAY = datetime(2026, 11, 29, 12, 0)  # closed; opens Monday 30 Nov 09:00 Madrid


def _long(state: AckState) -> float:
    return 3600.0


def _msg(n: int, **kw: object) -> InboundMessage:
    return InboundMessage(external_id=f"in-{n}", sender=Identity("cust-1", name="Customer"), text="hola",
                          thread_key="t-1", **kw)  # type: ignore[arg-type]


def _outbound(engine: Engine, conv_id: int) -> list:  # type: ignore[type-arg]
    with engine.connect() as conn:
        return conn.execute(select(messages.c.text, messages.c.automatic, messages.c.status)
                            .where(messages.c.conversation_id == conv_id, messages.c.direction == "out")).all()


def test_outside_hours_says_when_the_shop_opens_in_the_customers_language(store_engine: Engine) -> None:
    sla.set_config(store_engine, "hours", MONDAYS)
    channel_id = create_channel(store_engine, "api", "shop", CONFIG)
    [rec] = record_inbound(store_engine, channel_id, [_msg(1)])
    conv_id = rec.conversation_id
    assert conv_id is not None
    update_conversation(store_engine, conv_id, {"language": "es"})
    sent = acknowledge(store_engine, conv_id, period=DAY, long_wait=600, now=SUNDAY)
    assert sent is not None
    [(text, automatic, status)] = _outbound(store_engine, conv_id)
    assert text == ("Gracias por tu mensaje. Ahora estamos cerrados; te responderemos a partir del "
                    "lunes 30/11, 09:00 (Europe/Madrid).")
    assert (automatic, status) == (True, "pending")
    with store_engine.connect() as conn:
        waiting = conn.execute(select(conversations.c.waiting_since).where(conversations.c.id == conv_id)).scalar()
    assert waiting is not None  # an acknowledgement is no answer
    # Once per period: a second message the same day gets none; the next day it does.
    record_inbound(store_engine, channel_id, [_msg(2)])
    assert acknowledge(store_engine, conv_id, period=DAY, long_wait=600, now=SUNDAY + timedelta(hours=3)) is None
    assert acknowledge(store_engine, conv_id, period=DAY, long_wait=600, now=SUNDAY + DAY + timedelta(hours=7)) \
        is not None
    assert len(_outbound(store_engine, conv_id)) == 2


def test_within_hours_only_a_long_wait_is_acknowledged(store_engine: Engine) -> None:
    channel_id = create_channel(store_engine, "api", "shop", CONFIG)  # no hours: always open
    [rec] = record_inbound(store_engine, channel_id, [_msg(1)])
    conv_id = rec.conversation_id
    assert conv_id is not None
    assert acknowledge(store_engine, conv_id, period=DAY, long_wait=600, estimate=lambda s: 120.0) is None
    assert acknowledge(store_engine, conv_id, period=DAY, long_wait=600, estimate=lambda s: None) is None
    assert acknowledge(store_engine, conv_id, period=DAY, long_wait=600, estimate=_long) is not None
    [(text, _, _)] = _outbound(store_engine, conv_id)
    assert text == "Thank you for your message. We will answer in about 60 minutes."


def test_never_to_automatic_mail(store_engine: Engine) -> None:
    channel_id = create_channel(store_engine, "api", "shop", CONFIG)
    [rec] = record_inbound(store_engine, channel_id, [_msg(1, automatic=True)])
    assert acknowledge(store_engine, rec.conversation_id, period=DAY, long_wait=600, estimate=_long) is None  # type: ignore[arg-type]
    assert _outbound(store_engine, rec.conversation_id) == []  # type: ignore[arg-type]


def test_never_to_an_unreachable_customer(store_engine: Engine) -> None:
    channel_id = create_channel(store_engine, "api", "shop", CONFIG)
    [rec, _] = record_inbound(store_engine, channel_id, [_msg(1), ReachabilityUpdate("cust-1", False, reason="STOP")])
    assert acknowledge(store_engine, rec.conversation_id, period=DAY, long_wait=600, estimate=_long) is None  # type: ignore[arg-type]
    assert _outbound(store_engine, rec.conversation_id) == []  # type: ignore[arg-type]


def test_never_outside_the_reply_window(store_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(connectors.REGISTRY, "windowed", "tests.web.windowed:WindowedConnector")  # 1 minute
    channel_id = create_channel(store_engine, "windowed", "wa", CONFIG)
    [rec] = record_inbound(store_engine, channel_id, [_msg(1)])
    conv_id = rec.conversation_id
    assert conv_id is not None
    late = utcnow() + timedelta(minutes=2)
    assert acknowledge(store_engine, conv_id, period=DAY, long_wait=600, estimate=_long, now=late) is None
    assert acknowledge(store_engine, conv_id, period=DAY, long_wait=600, estimate=_long) is not None


def _state(**kw: object) -> AckState:
    base: dict[str, object] = dict(
        conversation_id=1, status="open", assignee_id=None, language="pt-BR", channel_kind="sms",
        waiting_since=SUNDAY, acked_at=None, last_in_automatic=False, window_end=None, unreachable=None,
        hours=None, agents_online=2, spare_capacity=0)
    base.update(kw)
    return AckState(**base)  # type: ignore[arg-type]


def test_compose_rules_and_languages() -> None:
    assert compose(_state(), SUNDAY, period=DAY, long_wait=600, estimate=lambda s: 600.0) == \
        "Obrigado pela sua mensagem. Responderemos dentro de cerca de 10 minutos."
    assert live_wait(None, 1)(_state(agents_online=0)) is None  # type: ignore[arg-type]
    assert live_wait(None, 1)(_state(spare_capacity=1)) == 0.0  # someone has room: routed at once  # type: ignore[arg-type]
    assert compose(_state(assignee_id=7), SUNDAY, period=DAY, long_wait=600, estimate=_long) is None  # has an agent, hours open
    closed = compose(_state(language="ca", assignee_id=7, hours=MONDAYS), SUNDAY, period=DAY, long_wait=600, estimate=_long)
    assert closed == "Gràcies pel teu missatge. Ara som tancats; et respondrem a partir del dilluns 30/11, " \
                     "09:00 (Europe/Madrid)."
    assert compose(_state(language="pl", hours=MONDAYS), SUNDAY, period=DAY, long_wait=600, estimate=_long).startswith(  # type: ignore[union-attr]
        "Dziękujemy za wiadomość. Teraz jesteśmy zamknięci; odpowiemy od poniedziałek 30/11")
    assert "Monday 30/11 at 09:00" in compose(_state(language="de", hours=MONDAYS), SUNDAY, period=DAY,  # type: ignore[operator]
                                              long_wait=600, estimate=_long)
    assert compose(_state(language=None, hours=MONDAYS), SUNDAY, period=DAY, long_wait=600, estimate=_long,  # type: ignore[union-attr]
                   default_language="es").startswith("Gracias por tu mensaje. Ahora estamos cerrados")
    assert compose(_state(window_end=SUNDAY - timedelta(seconds=1)), SUNDAY, period=DAY, long_wait=600, estimate=_long) is None
    assert compose(_state(acked_at=SUNDAY - timedelta(hours=1)), SUNDAY, period=DAY, long_wait=600, estimate=_long) is None
    assert compose(_state(waiting_since=None), SUNDAY, period=DAY, long_wait=600, estimate=_long) is None  # answered already
    assert compose(_state(status="resolved"), SUNDAY, period=DAY, long_wait=600, estimate=_long) is None


def test_stored_messages_ring_one_acknowledgement_job() -> None:
    import dramatiq

    import workers
    from connectors.base import MessageEdit, StatusUpdate
    from store.inbound import Recorded

    broker = workers.setup_broker(None)
    events = [_msg(1), _msg(2), _msg(3), _msg(4), StatusUpdate("out-1", "delivered"),
              MessageEdit("in-1", "hola!"), _msg(5)]
    workers.after_inbound([Recorded(1, 10), Recorded(2, 10), Recorded(3, 11), Recorded(4, 12, duplicate=True),
                           Recorded(7, 13), Recorded(1, 14), Recorded(None, None)], events)
    [message] = [dramatiq.Message.decode(broker.queues["acknowledge"].get())
                 for _ in range(broker.queues["acknowledge"].qsize())]
    assert (message.actor_name, message.args[0]) == ("acknowledge", [10, 11])  # no receipt, edit, repeat
    workers.after_inbound([Recorded(1, 10)])  # results alone (no events): no acknowledgement job
    assert broker.queues["acknowledge"].qsize() == 0


def test_the_acknowledge_actor_sends_once(store_engine: Engine) -> None:
    import workers

    sla.set_config(store_engine, "hours", {"timezone": "UTC", "week": {}, "closed": []})  # closed: no opening
    channel_id = create_channel(store_engine, "api", "shop", CONFIG)
    [rec] = record_inbound(store_engine, channel_id, [_msg(1)])
    workers.acknowledge([rec.conversation_id])  # never opens: nothing to promise
    assert _outbound(store_engine, rec.conversation_id) == []  # type: ignore[arg-type]
    later = DAYS[(utcnow().weekday() + 3) % 7]  # open on one day only, three days from now: closed now
    sla.set_config(store_engine, "hours", {"timezone": "Europe/Madrid", "week": {later: [["09:00", "18:00"]]}})
    workers.acknowledge([rec.conversation_id])
    workers.acknowledge([rec.conversation_id])
    [(text, automatic, _)] = _outbound(store_engine, rec.conversation_id)  # type: ignore[arg-type]
    assert automatic and "09:00 (Europe/Madrid)" in text


def test_the_live_estimate_reads_the_queue(store_engine: Engine) -> None:
    from store.agents import create_agent
    from store.assignment import assign_manually

    channel_id = create_channel(store_engine, "api", "shop", CONFIG)
    ana, _ = create_agent(store_engine, name="Ana", email="ana@example.com", capacity=1, presence="online")
    busy, waiting = (record_inbound(store_engine, channel_id, [InboundMessage(
        external_id=f"m-{who}", sender=Identity(who), text="hi", thread_key=who)])[0].conversation_id
        for who in ("first", "second"))
    # Ana has room: the router takes the conversation now; no long wait to announce.
    assert acknowledge(store_engine, waiting, period=DAY, long_wait=60) is None  # type: ignore[arg-type]
    assign_manually(store_engine, busy, ana, by=ana)  # type: ignore[arg-type]
    assert acknowledge(store_engine, waiting, period=DAY, long_wait=901) is None  # type: ignore[arg-type]
    assert acknowledge(store_engine, waiting, period=DAY, long_wait=60) is not None  # type: ignore[arg-type]
    [(text, _, _)] = _outbound(store_engine, waiting)  # type: ignore[arg-type]
    # router.waits: first in line, one slot, messaging's default handling time of 900 s
    assert text == "Thank you for your message. We will answer in about 15 minutes."
