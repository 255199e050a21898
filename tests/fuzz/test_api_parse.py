"""Fuzzing the API channel's parser: a correctly signed body of any content gives messages, or
PayloadError (400), never another exception (which the webhook would answer 500); a body whose
signature is wrong gives AuthError whatever it holds."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from connectors.api import SIGNATURE_HEADER, ApiConnector, sign
from connectors.base import InboundMessage, WebhookRequest, parse_config
from connectors.errors import AuthError, PayloadError
from tests.fuzz.strategies import api_payloads, budget, hostile_text

SECRET = "fuzz-secret-0123456789abcdef"
# A header value as the server hands it over: bytes read as latin-1.
HEADER_VALUES = hostile_text.map(lambda s: s.encode("utf-8", "replace").decode("latin-1"))
CONNECTOR = ApiConnector(parse_config(ApiConnector, {"secret": SECRET, "callback_url": "http://127.0.0.1:9/"}))


def request(body: bytes, signature: str | None = None) -> WebhookRequest:
    return WebhookRequest(method="POST", url="http://127.0.0.1/webhooks/1",
                          headers={SIGNATURE_HEADER: sign(SECRET, body) if signature is None else signature},
                          query={}, body=body)


def parse_signed(body: bytes) -> list[InboundMessage] | PayloadError:
    """The parser's outcome for a signed ``body``; any exception but PayloadError fails the test."""
    try:
        events = CONNECTOR.parse(request(body))
    except PayloadError as exc:
        return exc
    except Exception as exc:  # the failure this fuzzer looks for: shown with its input
        raise AssertionError(f"parse raised {type(exc).__name__}: {exc} for a body of {len(body)} bytes: "
                             f"{body[:120]!r}...{body[-40:]!r}") from exc
    assert isinstance(events, list) and all(isinstance(e, InboundMessage) for e in events), events
    return events


@given(api_payloads())
@budget(300)
def test_signed_body_parses_or_is_refused(body: bytes) -> None:
    outcome = parse_signed(body)
    if isinstance(outcome, list):
        assert len(outcome) == 1
        assert outcome[0].raw == body
        assert outcome[0].external_id and outcome[0].sender.external_id


@given(st.uuids().map(str), hostile_text.filter(bool), hostile_text, st.booleans())
@budget(150)
def test_well_formed_message_is_read_as_sent(message_id: str, sender: str, text: str, ascii_only: bool) -> None:
    """A message with the right shape and any string values is read, fields as sent (or, for text
    a JSON decoder cannot take, or lone surrogates, which pydantic refuses, PayloadError): the
    fuzzer's envelope does reach the parser's inner checks."""
    payload = {"message_id": message_id, "from": {"id": sender}, "text": text}
    body = json.dumps(payload, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    outcome = parse_signed(body)
    if ascii_only and not any(0xD800 <= ord(ch) <= 0xDFFF for ch in sender + text):
        assert isinstance(outcome, list), outcome
    if isinstance(outcome, list):
        assert outcome[0].external_id == message_id
        assert outcome[0].thread_key == f"from:{outcome[0].sender.external_id}"


@given(api_payloads(), st.one_of(st.just(""), HEADER_VALUES))
@budget(150)
def test_wrong_signature_is_refused_whatever_the_body(body: bytes, signature: str) -> None:
    try:
        CONNECTOR.parse(request(body, signature=signature or "sha256=" + "0" * 64))
    except AuthError:
        return
    raise AssertionError("a body with a wrong signature was accepted")
