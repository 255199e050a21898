"""``configure_number``: saving an ``sms`` channel points its Twilio number's SmsUrl (and VoiceUrl,
with voice) at the channel through the IncomingPhoneNumbers API of the stand-in; a number the
account lacks, or a refusal, is a 422 with its reason and the channel is not saved; deleting the
channel clears the URLs that still point at it. Without the flag the number is left alone, and
the admin is shown the URLs to set by hand."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.base import parse_config
from connectors.errors import ConfigError
from connectors.twilio import SmsConnector
from tests import support
from tests.fakes.twilio import FakeTwilio

HOOK = "https://desk.example.com/webhooks/5"


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    server = FakeTwilio()
    yield server
    server.close()


def connector(fake: FakeTwilio, **config: object) -> SmsConnector:
    return SmsConnector(parse_config(SmsConnector, fake.config(configure_number=True, **config)), channel_id=5,
                        webhook_url=HOOK)


def test_the_number_is_pointed_at_the_channel_once_and_released_on_deletion(fake: FakeTwilio) -> None:
    number = fake.add_number("+15550001111")
    other = fake.add_number("+15550002222", sms_url="https://elsewhere.example/sms")
    connector(fake, voice=True).webhook_setup(HOOK)
    assert (number["sms_url"], number["sms_method"]) == (HOOK, "POST")
    assert (number["voice_url"], number["voice_method"]) == (f"{HOOK}/voice", "POST")
    assert other["sms_url"] == "https://elsewhere.example/sms"
    fake.number_errors.append(20500)  # saving again asks nothing of Twilio: no update to fail
    connector(fake, voice=True).webhook_setup(HOOK)
    fake.number_errors.clear()
    connector(fake, voice=True).webhook_teardown()
    assert number["sms_url"] == "" and number["voice_url"] == ""


def test_without_the_flag_nothing_is_asked_of_twilio(fake: FakeTwilio) -> None:
    number = fake.add_number("+15550001111")
    plain = SmsConnector(parse_config(SmsConnector, fake.config()), channel_id=5, webhook_url=HOOK)
    plain.webhook_setup(HOOK)
    plain.webhook_teardown()
    assert number["sms_url"] == "https://demo.twilio.com/welcome/sms/reply"


def test_a_number_the_account_lacks_or_a_refusal_is_a_config_error(fake: FakeTwilio) -> None:
    with pytest.raises(ConfigError, match=r"this Twilio account has no number \+15550001111"):
        connector(fake).webhook_setup(HOOK)
    fake.add_number("+15550001111")
    fake.number_errors.append(21402)
    with pytest.raises(ConfigError, match=r"Twilio refused setting the number's webhooks: .*21402"):
        connector(fake).webhook_setup(HOOK)
    service_only = {**fake.config(configure_number=True), "messaging_service_sid": "MG" + "a" * 32}
    del service_only["from_number"]
    with pytest.raises(ConfigError, match="configure_number needs from_number"):
        SmsConnector(parse_config(SmsConnector, service_only)).webhook_setup(HOOK)


def test_as_the_admin_sees_it(omnidesk: support.Running, fake: FakeTwilio) -> None:
    number = fake.add_number("+15550001111")
    missing = omnidesk.api("POST", "/channels", json={"kind": "sms", "name": "Line", "config": fake.config(
        configure_number=True, from_number="+15550009999")})
    assert missing.status_code == 422 and "no number +15550009999" in missing.json()["detail"]
    assert omnidesk.ok("GET", "/channels")["items"] == []  # not saved
    channel = omnidesk.ok("POST", "/channels", json={"kind": "sms", "name": "Line",
                                                     "config": fake.config(configure_number=True)})
    assert number["sms_url"] == channel["webhook_url"] and number["voice_url"] == ""
    assert channel["webhook_urls"] == {"messages": channel["webhook_url"]}
    voiced = omnidesk.ok("PATCH", f"/channels/{channel['id']}", json={"config": {"voice": True}})
    assert number["voice_url"] == f"{channel['webhook_url']}/voice"
    assert voiced["webhook_urls"] == {"messages": channel["webhook_url"], "voice": f"{channel['webhook_url']}/voice"}
    fake.number_errors.append(20003)
    refused = omnidesk.api("PATCH", f"/channels/{channel['id']}", json={"config": {"voice": False}})
    assert refused.status_code == 422 and "credentials" in refused.json()["detail"]
    assert omnidesk.ok("GET", f"/channels/{channel['id']}")["config"]["voice"] is True  # unchanged
    omnidesk.ok("PATCH", f"/channels/{channel['id']}", json={"config": {"voice": False}})
    assert number["voice_url"] == "" and number["sms_url"] == channel["webhook_url"]
    omnidesk.ok("PATCH", f"/channels/{channel['id']}", json={"config": {"voice": True}})
    assert omnidesk.api("DELETE", f"/channels/{channel['id']}").status_code == 204
    assert number["sms_url"] == "" and number["voice_url"] == ""
