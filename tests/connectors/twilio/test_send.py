"""Sending through the real twilio Client against the local stand-in: what Twilio receives, its
answers and errors as ours, and the lookup that keeps a reply from going out twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.base import Identity, OutboundMessage, parse_config
from connectors.errors import ConfigError, PermanentError, TransientError
from connectors.twilio import SmsConnector, WhatsAppConnector
from tests.fakes.twilio import FakeTwilio

CUSTOMER = "+34600111222"
TEMPLATE = {"name": "order_update", "content_sid": "HX" + "ab" * 16, "language": "es", "variables": ["1", "2"]}


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    server = FakeTwilio(callbacks=[])
    yield server
    server.close()


def sms(fake: FakeTwilio, **extra: Any) -> SmsConnector:
    return SmsConnector(parse_config(SmsConnector, fake.config(**extra)), channel_id=3,
                        webhook_url="https://desk.example.com/webhooks/3")


def whatsapp(fake: FakeTwilio, **extra: Any) -> WhatsAppConnector:
    return WhatsAppConnector(parse_config(WhatsAppConnector, fake.config(templates=[TEMPLATE], **extra)),
                             channel_id=4, webhook_url="https://desk.example.com/webhooks/4")


def reply(text: str = "Your order left today.", to: str = CUSTOMER, **kw: Any) -> OutboundMessage:
    return OutboundMessage(message_id=1, conversation_id=1, conversation_number=1,
                           to=Identity(external_id=to, phone=to), text=text, **kw)


def test_sms_reply_reaches_twilio_with_its_status_callback(fake: FakeTwilio) -> None:
    result = sms(fake).send(reply())
    (sent,) = fake.messages
    assert sent.form["To"] == CUSTOMER and sent.form["From"] == "+15550001111"
    assert sent.form["Body"] == "Your order left today."
    assert sent.form["StatusCallback"] == "https://desk.example.com/webhooks/3/status?m=1"
    assert result.external_id == sent.sid and result.status == "sent" and result.note is None


def test_long_sms_is_one_message_and_its_segments_are_noted(fake: FakeTwilio) -> None:
    result = sms(fake).send(reply("a" * 400))
    assert len(fake.messages) == 1 and fake.messages[0].form["Body"] == "a" * 400
    assert result.note == "sent as 3 SMS segments"
    assert sms(fake).capabilities.max_text_length == 1600


def test_whatsapp_addresses_and_template(fake: FakeTwilio) -> None:
    hook = whatsapp(fake)
    hook.send(reply("hola"))
    hook.send(reply("[template order_update]", template={"name": "order_update",
                                                         "variables": {"1": "Marta", "2": "1234"}}))
    text, template = fake.messages
    assert text.form["To"] == f"whatsapp:{CUSTOMER}" and text.form["From"] == "whatsapp:+15550001111"
    assert template.form["ContentSid"] == TEMPLATE["content_sid"] and "Body" not in template.form
    assert json.loads(template.form["ContentVariables"]) == {"1": "Marta", "2": "1234"}
    with pytest.raises(PermanentError, match="no template 'missing'"):
        hook.send(reply("x", template={"name": "missing", "variables": {}}))


@pytest.mark.parametrize(("code", "words"), [
    (21211, "not a valid phone number"), (21614, "cannot receive SMS"), (63016, "24-hour window"),
    (63014, "blocked this business"), (21610, "unsubscribed"),
])
def test_provider_errors_fail_the_reply_readably(fake: FakeTwilio, code: int, words: str) -> None:
    fake.errors_for[CUSTOMER] = code
    with pytest.raises(PermanentError) as failed:
        sms(fake).send(reply())
    assert words in failed.value.reason and str(code) in failed.value.reason
    assert fake.messages == []


def test_unsubscribed_is_the_recipient_unreachable_error(fake: FakeTwilio) -> None:
    from connectors import errors

    fake.errors_for[CUSTOMER] = 21610
    with pytest.raises(errors.RecipientUnreachable):
        sms(fake).send(reply())


def test_too_many_requests_is_transient(fake: FakeTwilio) -> None:
    fake.rate = 1
    hook = sms(fake)
    hook.send(reply())
    with pytest.raises(TransientError) as busy:
        hook.send(reply("second"))
    assert "20429" in busy.value.reason
    assert fake.refused_429 == 1 and len(fake.messages) == 1


def test_server_errors_and_a_dead_host_are_transient(fake: FakeTwilio) -> None:
    fake.errors_for[CUSTOMER] = 20500
    from tests.fakes import twilio as fake_module

    fake_module.ERROR_STATUS[20500] = 503
    try:
        with pytest.raises(TransientError, match="503"):
            sms(fake).send(reply())
    finally:
        del fake_module.ERROR_STATUS[20500]
    from tests.support import free_port

    dead = SmsConnector(parse_config(SmsConnector, {**fake.config(), "api_base_url": f"http://127.0.0.1:{free_port()}"}))
    with pytest.raises(TransientError, match="unreachable"):
        dead.send(reply())


def test_wrong_credentials_are_a_config_error(fake: FakeTwilio) -> None:
    wrong = SmsConnector(parse_config(SmsConnector, {**fake.config(), "auth_token": "0" * 32}))
    with pytest.raises(ConfigError):
        wrong.send(reply())


def test_dropped_answer_is_transient_and_the_lookup_finds_the_message(fake: FakeTwilio) -> None:
    hook = sms(fake)
    started = datetime.now(UTC)
    fake.drop_after_accept = 1
    with pytest.raises(TransientError, match="asked before"):
        hook.send(reply("Dropped answer"))
    assert len(fake.messages) == 1  # Twilio took it
    found = hook.find_sent(reply("Dropped answer"), since=started)
    assert found is not None and found.external_id == fake.messages[0].sid
    assert hook.find_sent(reply("Another text"), since=started) is None
    assert hook.find_sent(reply("Dropped answer", to="+34600999888"), since=started) is None
    later = datetime.now(UTC) + timedelta(minutes=10)
    assert hook.find_sent(reply("Dropped answer"), since=later) is None  # older than the reply


def test_config_refuses_a_channel_without_sender_or_with_a_bad_number() -> None:
    base = {"account_sid": "AC" + "0" * 32, "auth_token": "x" * 32}
    for values in (base, {**base, "from_number": "12345"}, {**base, "from_number": "+1555", "templates": []}):
        with pytest.raises(ConfigError):
            parse_config(WhatsAppConnector, values)
    assert parse_config(SmsConnector, {**base, "from_number": "+1 (555) 000-1111"}).from_number == "+15550001111"
    with pytest.raises(ConfigError, match="unique"):
        parse_config(WhatsAppConnector, {**base, "from_number": "+15550001111", "templates": [TEMPLATE, TEMPLATE]})


def test_check_tries_the_credentials(fake: FakeTwilio) -> None:
    sms(fake).check()
    with pytest.raises(ConfigError) as refused:
        SmsConnector(parse_config(SmsConnector, {**fake.config(), "auth_token": "0" * 32})).check()
    assert refused.value.auth
    from tests.support import free_port

    with pytest.raises(ConfigError, match="unreachable"):
        SmsConnector(parse_config(SmsConnector, {**fake.config(), "api_base_url": f"http://127.0.0.1:{free_port()}"})).check()


def test_fetch_takes_media_with_the_accounts_credentials_through_the_redirect(fake: FakeTwilio) -> None:
    hook = sms(fake)
    url = fake.add_media(b"\xff\xd8jpeg" * 100, "image/jpeg")
    got = hook.fetch(url, max_bytes=10_000)
    assert got.data == b"\xff\xd8jpeg" * 100 and got.content_type == "image/jpeg"
    with pytest.raises(PermanentError, match="larger than 100 bytes"):
        hook.fetch(url, max_bytes=100)
    with pytest.raises(PermanentError, match="404"):
        hook.fetch(url + "-gone", max_bytes=10_000)
    # Without the account's credentials (a host that is not Twilio's gets none) the media is refused.
    foreign = url.replace("127.0.0.1", "localhost")
    with pytest.raises(PermanentError, match="401"):
        hook.fetch(foreign, max_bytes=10_000)


def test_files_go_as_media_urls_only_where_twilio_carries_them(fake: FakeTwilio) -> None:
    from connectors.base import Attachment

    served = fake.add_media(b"\x89PNG photo", "image/png")  # a URL the stand-in can fetch
    photo = Attachment("photo.png", "image/png", b"\x89PNG photo", url=served)
    sms(fake).send(reply("", to="+12025550143", attachments=(photo, photo)))
    (sent,) = fake.messages
    assert sent.media_urls == [served, served] and "Body" not in sent.form
    with pytest.raises(PermanentError, match=r"number \+447700900123 cannot send files: Twilio sends MMS only from US"):
        sms(fake, from_number="+447700900123").send(reply("hi", to="+12025550143", attachments=(photo,)))
    with pytest.raises(PermanentError, match="no link Twilio could fetch them from"):
        sms(fake).send(reply("hi", to="+12025550143", attachments=(Attachment("a.png", "image/png", b"x"),)))
    # What each kind takes, as capabilities: MMS only to US and Canadian numbers; WhatsApp one file.
    assert SmsConnector.capabilities_for("phone:+14165550123", None).supports_attachments  # Toronto
    spain = SmsConnector.capabilities_for("phone:+34600111222", None)
    with pytest.raises(PermanentError, match=r"files cannot go by SMS to \+34600111222 \(country ES\)"):
        spain.check_files([photo])
    spain.check_text("text alone goes")
    with pytest.raises(PermanentError, match="at most one file a message"):
        WhatsAppConnector.capabilities_for("phone:+34600111222", None).check_files([photo, photo])
    WhatsAppConnector.capabilities_for("phone:+34600111222", None).check_files([photo])
