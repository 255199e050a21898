"""What can go wrong at a channel, as the rest of omnidesk sees it.

    ConnectorError
    ├── TransientError(retry_after)   the same call may work later: network, 5xx, 429, 4xx SMTP
    ├── PermanentError(reason)        it never will: unsubscribed, blocked, invalid address, 5xx SMTP
    │   └── RecipientUnreachable      the customer cannot be written to on this channel (opted out,
    │                                 blocked the bot): the reply fails and the identity is marked
    ├── ConfigError                   the channel's settings are wrong or its login is refused
    ├── AuthError(status)             a webhook's signature or secret is missing or wrong (401, or
    │                                 the status the provider's documentation names, e.g. 403)
    ├── PayloadError                  a webhook body we cannot read (400)
    └── UnsupportedEvent(event)       a well-formed, authenticated event we do not use (200, ignored:
                                      the provider must not retry it forever)

Each connector turns its vendor's exceptions into these in one place. The deliver actor catches
them by kind: TransientError and ConfigError are retried later (a ConfigError also marks the channel
in error for the admin), PermanentError fails the reply with ``reason`` for the agent to read.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every channel error."""


class TransientError(ConnectorError):
    def __init__(self, reason: str, retry_after: float | None = None, *, sent: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after  # seconds, when the provider said
        # A reply sent in parts (a long text split): the external id naming the parts already
        # sent. The deliver job keeps it; the next attempt gets it as ``external_id`` and sends
        # only the rest.
        self.sent = sent


class PermanentError(ConnectorError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RecipientUnreachable(PermanentError):
    """The customer cannot be reached on this channel (Telegram: the bot was blocked; Twilio 21610:
    unsubscribed). The deliver job fails the reply and marks the customer's identity unreachable,
    so later replies are refused at once until the channel says the customer opted back in
    (a :class:`connectors.base.ReachabilityUpdate`)."""


class ConfigError(ConnectorError):
    """Settings or credentials are wrong; ``str(err)`` says what, for the admin."""

    def __init__(self, reason: str, *, auth: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.auth = auth  # the server refused the login


class AuthError(ConnectorError):
    """``status``: what the webhook answers. 401 unless the channel's provider expects another
    (Twilio's and Telegram's documentation: 403 for a bad signature or secret token)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


class PayloadError(ConnectorError):
    pass


class UnsupportedEvent(ConnectorError):
    """An authenticated webhook whose event type we do not handle (a read receipt we do not
    track, a new kind the vendor added). Answered 200 so the provider stops sending it."""

    def __init__(self, event: str) -> None:
        super().__init__(f"event {event!r} is not used; ignored")
        self.event = event
