"""The Twilio channels end to end on the embedded default (SQLite, in-process broker) and on
PostgreSQL + Redis, against the local Twilio stand-in; and once as the separate-process deployment."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, update

import delivery
from store.db import normalise_url
from store.sql import messages
from tests import support
from tests.connectors.twilio import flows
from tests.deployment import Deployment
from tests.fakes.twilio import FakeTwilio

FAST_RETRY = {"OMNIDESK_RETRY_BASE": "0.3"}


@pytest.fixture
def desk(backend: str, database_url: str, tmp_path: Path) -> Iterator[support.Running]:
    with support.running_omnidesk(backend, database_url, tmp_path, **FAST_RETRY) as running:
        yield running


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    server = FakeTwilio()
    yield server
    server.close()


def line(desk: support.Running, fake: FakeTwilio, kind: str = "sms", **config: Any) -> flows.Line:
    return flows.Line(desk, desk.http, desk.url, f"Bearer {desk.admin_token}", fake, kind, **config)


def aged(engine: Any) -> Any:
    def age(conversation_id: int) -> None:
        with engine.begin() as conn:
            rows = conn.execute(select(messages.c.id, messages.c.created_at)
                                .where(messages.c.conversation_id == conversation_id)).all()
            for row in rows:
                conn.execute(update(messages).where(messages.c.id == row.id)
                             .values(created_at=row.created_at - timedelta(hours=25)))
    return age


def test_sms_round_trip(desk: support.Running, fake: FakeTwilio) -> None:
    flows.sms_round_trip(line(desk, fake))


def test_receipts_out_of_order_never_move_back(desk: support.Running, fake: FakeTwilio) -> None:
    flows.receipts_out_of_order(line(desk, fake, "whatsapp"))


def test_dropped_connection_after_accepting_sends_once(desk: support.Running, fake: FakeTwilio) -> None:
    flows.dropped_connection_sends_once(line(desk, fake))


def test_provider_error_fails_the_reply_readably(desk: support.Running, fake: FakeTwilio) -> None:
    flows.provider_error_fails_readably(line(desk, fake))


def test_whatsapp_window_closed_then_template(desk: support.Running, fake: FakeTwilio) -> None:
    flows.whatsapp_window_and_template(line(desk, fake, "whatsapp"), aged(desk.engine))


def test_same_number_on_sms_and_whatsapp_is_one_contact(desk: support.Running, fake: FakeTwilio) -> None:
    sms, whatsapp = line(desk, fake), line(desk, fake, "whatsapp")
    sms.message("por SMS")
    whatsapp.message("por WhatsApp")
    assert sms.conversation()["contact"]["id"] == whatsapp.conversation()["contact"]["id"]


def test_a_taken_over_reply_is_looked_up_not_resent(desk: support.Running, fake: FakeTwilio) -> None:
    """A worker stopped after Twilio took the reply, before recording it: the next claim takes
    over the expired lease and finds the message at Twilio instead of sending it again."""
    import workers
    from store import outbound

    sms = line(desk, fake)
    sms.message("hola")
    conv = sms.conversation()
    desk.worker.stop()
    fake.callbacks = []  # no receipt: one arriving before the takeover would settle the reply by itself
    message_id = sms.reply(conv["id"], text="Sent by a worker that died").json()["id"]
    claim = outbound.claim(desk.engine, message_id, lease=0.01)
    assert claim is not None
    from store.channels import connector_for, load_channel

    connector_for(load_channel(desk.engine, sms.id)).send(claim.message)  # then the worker died
    taken = support.wait_for(lambda: outbound.claim(desk.engine, message_id), what="the lease to run out")
    assert taken.taken_over
    delivery.deliver_one(desk.engine, taken, workers._bells())
    done = sms.status_of(conv["id"], message_id)
    assert done["status"] == "sent" and "not sent again" in done["status_reason"]
    assert len(fake.messages) == 1


def test_deployment(pg_url: str, tmp_path: Path) -> None:
    """web, worker and scheduler as separate processes on PostgreSQL + Redis."""
    with Deployment(pg_url, tmp_path, **FAST_RETRY) as desk:
        engine = create_engine(normalise_url(pg_url))
        try:
            url, token = f"http://127.0.0.1:{desk.port}", desk.api.headers["Authorization"]
            stories = [(flows.sms_round_trip, "sms"), (flows.dropped_connection_sends_once, "sms"),
                       (lambda line: flows.whatsapp_window_and_template(line, aged(engine)), "whatsapp"),
                       (flows.stop_blocks_until_start, "sms"), (flows.receipts_out_of_order, "whatsapp"),
                       (lambda line: flows.voicemail_to_sms_reply(line, b"ID3\x03audio" * 500), "sms")]
            for story, kind in stories:
                fake = FakeTwilio()
                try:
                    story(flows.Line(desk, desk.api, url, token, fake, kind, **({"voice": True} if kind == "sms" else {})))
                finally:
                    fake.close()
        finally:
            engine.dispose()


def test_refused_webhooks_store_nothing(desk: support.Running, fake: FakeTwilio) -> None:
    flows.refusals_store_nothing(line(desk, fake))


def test_voicemail_becomes_a_conversation_answered_by_sms(desk: support.Running, fake: FakeTwilio) -> None:
    flows.voicemail_to_sms_reply(line(desk, fake, voice=True), b"ID3\x03audio" * 500)


def test_stop_blocks_replies_until_start(desk: support.Running, fake: FakeTwilio) -> None:
    flows.stop_blocks_until_start(line(desk, fake))


def test_a_call_outside_the_shops_business_hours_hears_the_closed_greeting(desk: support.Running,
                                                                          fake: FakeTwilio) -> None:
    phone = line(desk, fake, voice=True, voice_greeting="Hola, deja tu mensaje", voice_closed_greeting="Estamos cerrados")
    call = {"CallSid": flows.sid("CA"), "AccountSid": fake.account_sid, "From": flows.CUSTOMER, "To": "+15550001111",
            "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01"}
    admin = {"Authorization": f"Bearer {desk.admin_token}"}
    assert b"Hola, deja tu mensaje" in phone.post(call, "voice").content  # no hours set: always open
    never = {"timezone": "Europe/Madrid", "week": {}}  # the shop's hours: open on no day
    assert desk.http.put("/api/v1/settings/hours", json={"hours": never}, headers=admin).status_code == 200
    try:
        answer = phone.post(call, "voice").content
        assert b"Estamos cerrados" in answer and b"Hola" not in answer
    finally:
        assert desk.http.put("/api/v1/settings/hours", json={"hours": None}, headers=admin).status_code == 200
