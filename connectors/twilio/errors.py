"""Twilio's failures as ours, in one place: what the REST API raises on a send, and the error
codes a failed receipt carries, in words the agent can act on."""

from __future__ import annotations

import requests
from twilio.base.exceptions import TwilioRestException

from connectors.errors import ConfigError, ConnectorError, PermanentError, RecipientUnreachable, TransientError

UNSUBSCRIBED = 21610

READABLE = {
    63016: "outside WhatsApp's 24-hour window: only an approved template can be sent now",
    63014: "the customer has blocked this business on WhatsApp",
    21211: "the customer's number is not a valid phone number",
    21614: "the customer's number cannot receive SMS (a landline?)",
    UNSUBSCRIBED: "the customer unsubscribed from this number (replied STOP); they must send START first",
    21408: "this account may not send to the customer's country",
    30003: "the customer's phone is unreachable (off or out of coverage)",
    30004: "the customer's phone blocks this message",
    30005: "the customer's number does not exist",
    30006: "the customer's number is a landline or cannot receive this message",
    30007: "the carrier filtered the message as spam",
    30008: "the carrier could not deliver the message (unknown error)",
    63003: "the customer's number is not on WhatsApp",
    # The reply's files: Twilio fetches them from the signed links under OMNIDESK_PUBLIC_URL.
    11200: "Twilio could not fetch the reply's file from omnidesk: OMNIDESK_PUBLIC_URL must be reachable "
           "from the internet",
    12300: "Twilio refused the reply's file: its type is not one the channel can send",
    30019: "the reply's files are too large for this channel",
    21620: "Twilio could not use the reply's file link",
    21612: "this sender cannot send to the customer's number (e.g. MMS to a country it does not reach)",
    63019: "WhatsApp could not deliver the file (media download failed)",
}
# Busy, not wrong: the same request works later.
RETRY_CODES = {20429, 21611, 30001, 63018}


def reason_for(code: int | None, fallback: str) -> str:
    """A failure's reason for the agent: readable when we know the code, and always with it."""
    if code is None:
        return f"Twilio: {fallback}"
    return f"{READABLE.get(code, fallback)} (Twilio error {code})"


def from_rest(exc: TwilioRestException) -> ConnectorError:
    """An error answer of Twilio's REST API."""
    code = exc.code if isinstance(exc.code, int) else None
    status = exc.status or 0
    text = (exc.msg or "").strip()[:300] or f"HTTP {status}"
    if status == 429 or code in RETRY_CODES:
        # No Retry-After from Twilio: the deliver job's backoff (doubling) spaces the attempts.
        return TransientError(f"Twilio is rate-limiting this sender: {reason_for(code, text)}")
    if status >= 500:
        return TransientError(f"Twilio answered HTTP {status}: {text}")
    if status in (401, 403) and code in (None, 20003, 20005):
        return ConfigError(f"Twilio refused the account's credentials: {text}", auth=True)
    if code == UNSUBSCRIBED:
        return RecipientUnreachable(reason_for(code, text))
    return PermanentError(reason_for(code, text))


def from_transport(exc: requests.RequestException) -> TransientError:
    """The request did not get an answer. Whether Twilio took the message is then unknown unless
    the connection was never made: the deliver job asks Twilio before trying again."""
    if isinstance(exc, (requests.ConnectTimeout,)) or _refused(exc):
        return TransientError(f"Twilio unreachable: {type(exc).__name__}")
    return TransientError(f"no answer from Twilio ({type(exc).__name__}): the message may have been taken; "
                          "Twilio is asked before it is sent again")


def _refused(exc: requests.RequestException) -> bool:
    from urllib3.exceptions import NewConnectionError

    cause = exc.args[0] if exc.args else None
    reason = getattr(cause, "reason", None)
    return isinstance(cause, NewConnectionError) or isinstance(reason, NewConnectionError)

