"""Every recorded Twilio webhook (form-encoded, as Twilio posts it) against its expectation, signed
here with Twilio's algorithm; then the refusals: signatures and malformed bodies."""

from __future__ import annotations

import dataclasses

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest

from connectors import base
from connectors.base import InboundMessage, StatusUpdate, WebhookRequest, parse_config
from connectors.errors import AuthError, PayloadError
from connectors.twilio import SmsConnector, WhatsAppConnector
from tests.fakes.twilio import sign

FIXTURES = Path(__file__).parent / "fixtures"
ACCOUNT = "AC0123456789abcdef0123456789abcdef"
TOKEN = "f00dcafe0123456789abcdef01234567"
HOOK = "https://desk.example.com/webhooks/7"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.txt"))


def connector(kind: str, **extra: Any) -> SmsConnector | WhatsAppConnector:
    cls = SmsConnector if kind == "sms" else WhatsAppConnector
    values = {"account_sid": ACCOUNT, "auth_token": TOKEN, "from_number": "+15550001111", **extra}
    if kind == "sms":
        values.setdefault("voice", True)
    return cls(parse_config(cls, values), channel_id=7, webhook_url=HOOK)


def request(body: bytes, route: str = "", *, token: str = TOKEN, signature: str | None = None,
            url: str | None = None) -> WebhookRequest:
    path, _, query = route.partition("?")
    url = url or HOOK + (f"/{path}" if path else "") + (f"?{query}" if query else "")
    if signature is None:
        signature = sign(token, url, _fields(body))
    return WebhookRequest(method="POST", url=url, headers={"x-twilio-signature": signature},
                          query=dict(parse_qsl(query)), body=body, route=path)


def _fields(body: bytes) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for name, value in parse_qsl(body.decode(), keep_blank_values=True):
        fields.setdefault(name, []).append(value)
    return fields


def shown(event: Any) -> dict[str, Any]:
    if isinstance(event, InboundMessage):
        return {"type": "message", "external_id": event.external_id,
                "sender": {"external_id": event.sender.external_id, "name": event.sender.name,
                           "phone": event.sender.phone},
                "text": event.text, "thread_key": event.thread_key, "thread_refs": list(event.thread_refs),
                "remote_attachments": [{"ref": f.ref, "filename": f.filename, "content_type": f.content_type}
                                       for f in getattr(event, "remote_attachments", ())]}
    if isinstance(event, StatusUpdate):
        return {"type": "status", "external_id": event.external_id, "status": event.status, "reason": event.reason}
    return {"type": "reachability", "sender_external_id": event.sender_external_id, "reachable": event.reachable}


def test_every_fixture_has_its_expectation() -> None:
    assert len(NAMES) >= 9
    for name in NAMES:
        assert (FIXTURES / f"{name}.json").exists(), name


@pytest.mark.parametrize("name", NAMES)
def test_fixture(name: str) -> None:
    expected = json.loads((FIXTURES / f"{name}.json").read_text())
    body = (FIXTURES / f"{name}.txt").read_bytes().strip()
    hook = connector(expected["kind"])
    events = hook.parse(request(body, expected["route"]))
    assert [shown(e) for e in events] == expected["events"]
    for event in events:
        assert event.raw == body
    answer = hook.answer(request(body, expected["route"]))
    assert answer is not None and answer.content_type == "text/xml"
    if expected.get("answer") == "record":
        text = answer.body.decode()
        assert "<Say" in text and "<Record" in text and 'transcribe="true"' in text
        assert f"{HOOK}/recording?from=%2B34600111222" in text
        assert f"{HOOK}/transcription?from=%2B34600111222" in text
    else:
        assert answer.body.decode().startswith("<?xml") and "<Response" in answer.body.decode()


def test_a_reachability_change_is_an_inbound_event_type() -> None:
    assert base.ReachabilityUpdate in getattr(base.Event, "__args__", ())


# -- signatures ---------------------------------------------------------------------------------

SMS = (FIXTURES / "sms.txt").read_bytes().strip()


def test_missing_signature_is_refused_with_403() -> None:
    with pytest.raises(AuthError) as refused:
        connector("sms").parse(request(SMS, signature=""))
    assert refused.value.status == 403


def test_wrong_token_is_refused() -> None:
    with pytest.raises(AuthError) as refused:
        connector("sms").parse(request(SMS, token="another-token-of-another-acct"))
    assert refused.value.status == 403


def test_tampered_body_is_refused() -> None:
    signed = request(SMS)
    tampered = SMS.replace(b"comanda+1234", b"comanda+9999")
    assert tampered != SMS
    with pytest.raises(AuthError):
        connector("sms").parse(WebhookRequest(method="POST", url=signed.url, headers=signed.headers, query={},
                                              body=tampered))


def test_a_signature_replayed_at_another_url_is_refused() -> None:
    """A request signed for one channel's URL, replayed to another channel (or a sub-route)."""
    signed = request(SMS)
    for url in ("https://desk.example.com/webhooks/8", HOOK + "/status", "http://desk.example.com/webhooks/7"):
        with pytest.raises(AuthError):
            connector("sms").parse(WebhookRequest(method="POST", url=url, headers=signed.headers, query={},
                                                  body=SMS))


def test_a_field_added_by_twilio_is_covered_by_the_signature() -> None:
    body = SMS + b"&NewField=" + b"x"
    assert isinstance(connector("sms").parse(request(body))[0], InboundMessage)


# -- malformed but signed -------------------------------------------------------------------------

def _signed(kind: str, params: dict[str, str], route: str = "") -> list[Any]:
    return connector(kind).parse(request(urlencode(params).encode(), route))


GOOD = dict(parse_qsl(SMS.decode(), keep_blank_values=True))


@pytest.mark.parametrize(("change", "detail"), [
    ({"MessageSid": ""}, "MessageSid is missing"),
    ({"From": "not-a-number"}, "is not a phone number"),
    ({"From": "+1"}, "is not a phone number"),
    ({"NumMedia": "lots"}, "NumMedia"),
    ({"NumMedia": "1"}, "MediaUrl0"),
    ({"Latitude": "91", "Longitude": "0"}, "out of range"),
    ({"Latitude": "nan", "Longitude": "1"}, "out of range"),
    ({"Latitude": "north", "Longitude": "1"}, "not numbers"),
    ({"AccountSid": "AC" + "f" * 32}, "AccountSid"),
    ({"Body": "x" * 20_000}, "Body is over"),
])
def test_malformed_message_is_refused(change: dict[str, str], detail: str) -> None:
    with pytest.raises(PayloadError, match=detail):
        _signed("sms", {**GOOD, **change})


def test_unknown_route_and_get_are_refused() -> None:
    with pytest.raises(PayloadError):
        _signed("sms", GOOD, "somewhere")
    with pytest.raises(PayloadError):
        _signed("whatsapp", GOOD, "voice")  # WhatsApp channels take no calls
    get = request(b"", "")
    with pytest.raises(PayloadError):
        connector("sms").parse(WebhookRequest(method="GET", url=get.url, headers=get.headers, query={}, body=b""))


def test_unknown_status_is_refused_and_in_flight_ones_ignored() -> None:
    receipt = {"MessageSid": "SM" + "1" * 32, "AccountSid": ACCOUNT}
    with pytest.raises(PayloadError, match="unknown MessageStatus"):
        _signed("sms", {**receipt, "MessageStatus": "exploded"}, "status")
    for step in ("queued", "accepted", "sending"):
        assert _signed("sms", {**receipt, "MessageStatus": step}, "status") == []


def test_failed_receipt_names_the_code_readably() -> None:
    receipt = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "failed", "ErrorCode": "21614"}
    (update,) = _signed("sms", receipt, "status")
    assert update.status == "failed" and "cannot receive SMS" in update.reason and "21614" in update.reason
    (update,) = _signed("sms", {**receipt, "ErrorCode": "39999"}, "status")
    assert update.status == "failed" and "39999" in update.reason


def test_numbers_are_normalised_to_e164() -> None:
    (msg,) = _signed("sms", {**GOOD, "From": "+34 600 11 12 22"})
    assert msg.sender.external_id == msg.sender.phone == "+34600111222"


def test_a_call_when_voice_is_off_is_rejected_and_stores_nothing() -> None:
    body = (FIXTURES / "voice_call.txt").read_bytes().strip()
    hook = connector("sms", voice=False)
    assert hook.parse(request(body, "voice")) == []
    answer = hook.answer(request(body, "voice"))
    assert answer is not None and b"<Reject" in answer.body
    recording = (FIXTURES / "voice_recording.txt").read_bytes().strip()
    assert hook.parse(request(recording, "recording?from=%2B34600111222")) == []


def test_outside_business_hours_the_greeting_says_so() -> None:
    body = (FIXTURES / "voice_call.txt").read_bytes().strip()
    hook = connector("sms", voice_greeting="Hola, deja tu mensaje", voice_closed_greeting="Estamos cerrados",
                     voice_language="es-ES")
    assert b"Hola, deja tu mensaje" in hook.answer(request(body, "voice")).body
    closed = hook.answer(dataclasses.replace(request(body, "voice"), open_now=lambda: False)).body
    assert b"Estamos cerrados" in closed and b'language="es-ES"' in closed
