"""The email channel: IMAP in (IDLE where offered, else polling), SMTP out.

- :mod:`.config`: the channel's settings;
- :mod:`.imap`: polling with a per-folder (UIDVALIDITY, last UID) cursor, after-import actions, IDLE;
- :mod:`.parse`: raw mail -> :class:`~connectors.base.InboundMessage` (or a bounce's
  :class:`~connectors.base.StatusUpdate`), never raising;
- :mod:`.parallel`: a backlog's next batch parsed in a process pool while the caller stores the
  current one;
- :mod:`.compose` and :mod:`.smtp`: replies, threaded, and their delivery;
- :mod:`.ids`: omnidesk's own Message-IDs.

Nothing here touches the database: ``workers.poll_channel`` stores each batch with its cursor.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from connectors.base import Capabilities, Connector, OutboundMessage, PollBatch, SendResult
from connectors.email import compose, imap, smtp
from connectors.email.config import EmailConfig
from connectors.email.ids import make_message_id
from connectors.errors import ConfigError, PermanentError


class EmailConnector(Connector):
    kind = "email"
    Config = EmailConfig
    capabilities = Capabilities(pull=True, watch=True, poll_interval=60.0, supports_html=True,
                                supports_attachments=True, repeat_safe=True)  # the same Message-ID again
    config: EmailConfig

    def poll(self, cursor: dict[str, Any] | None) -> Iterator[PollBatch]:
        return imap.poll(self.config, cursor)

    def watch(self, stop: threading.Event, notify: Callable[[], None]) -> None:
        imap.watch(self.config, stop, notify)

    def new_external_id(self, message_id: int) -> str:
        return make_message_id(message_id, self.config.address)

    def send(self, message: OutboundMessage) -> SendResult:
        msg = compose.compose_reply(self.config, message)
        to = compose.recipients(msg)
        if not to:
            raise PermanentError("the customer has no email address to answer")
        smtp.send(self.config, msg, to)
        return SendResult(external_id=str(msg["Message-ID"]), status="sent")

    def check(self) -> None:
        for side, test in (("IMAP", imap.check), ("SMTP", smtp.check)):
            try:
                test(self.config)
            except ConfigError as exc:
                raise ConfigError(f"{side}: {exc}", auth=exc.auth) from None
            except Exception as exc:  # noqa: BLE001 - whatever it is, the admin reads it
                raise ConfigError(f"{side}: {getattr(exc, 'reason', None) or exc}") from None
