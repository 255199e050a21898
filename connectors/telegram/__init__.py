"""The Telegram channel: a bot's private chats, by webhook or by long polling (python-telegram-bot).

- :mod:`.config`: the channel's settings (token, mode, the webhook's secret token);
- :mod:`.bot`: PTB called from synchronous code, and Telegram's errors mapped in one place;
- :mod:`.parse`: updates -> events (messages, edits, button presses), one handler per type;
- :mod:`.send`: replies, split at Telegram's length limit, files, progress kept across retries.

Intake. In ``webhook`` mode, saving the channel calls setWebhook with its URL and secret token, and
every webhook must carry that token (else 403, nothing stored). In ``polling`` mode, saving calls
deleteWebhook (as does deleting a webhook-mode channel), and the ``poll_channel`` job long-polls
getUpdates: each call waits up to ``long_poll_timeout`` seconds for an update and returns at once
when there is one, so the long poll is itself the wake-up. The job keeps polling while updates come (for up to four minutes) and ends
after one quiet long poll; the sweep starts the next within ``poll_interval`` (1 s) plus its own
interval. A ``watch`` thread cannot do better: a second getUpdates consumer of one bot is refused
by Telegram (409 Conflict) and would confirm updates before they are stored. The offset is the
channel's cursor, saved with each batch; updates are confirmed (a getUpdates with a higher offset)
only after that commit.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

from telegram import Bot

from connectors.base import (
    Capabilities,
    Connector,
    Event,
    Fetched,
    Identity,
    InboundMessage,
    OutboundMessage,
    PollBatch,
    SendLimit,
    SendResult,
    WebhookAnswer,
    WebhookRequest,
)
from connectors.errors import AuthError, ConnectorError, PayloadError, PermanentError, UnsupportedEvent
from connectors.telegram import bot as tg
from connectors.telegram import parse, send
from connectors.telegram.config import TelegramConfig

log = logging.getLogger("omnidesk.connectors.telegram")

SECRET_HEADER = "x-telegram-bot-api-secret-token"
ALLOWED_UPDATES = list(parse.UPDATES)  # what setWebhook and getUpdates ask Telegram for
POLL_LIMIT = 100  # updates per getUpdates call (Telegram's maximum)
POLL_FOR = 240.0  # seconds one poll job keeps polling while updates keep coming (the job's limit is 30 min)


class TelegramConnector(Connector):
    kind = "telegram"
    Config = TelegramConfig
    # Pull and push: the mode decides which is used. Not repeat_safe: Telegram cannot drop a
    # repeated message. The poll lease covers one long poll and storing its batch.
    capabilities = Capabilities(push=True, pull=True, poll_interval=1.0, poll_lease=60.0,
                                max_text_length=None, supports_attachments=True)
    config: TelegramConfig

    # -- setting up ---------------------------------------------------------------------------------

    def check(self) -> Mapping[str, Any]:
        """getMe: the token works; the bot's name is saved with the channel for the admin."""
        me = tg.call(self.config, "setup", lambda bot: bot.get_me())
        return {"bot_name": " ".join(p for p in (me.first_name, me.last_name) if p), "bot_username": me.username}

    def webhook_setup(self, url: str) -> None:
        """Webhook mode: setWebhook with ``url`` and the secret token. Polling mode: deleteWebhook,
        so that getUpdates works (pending updates are kept either way)."""
        if self.config.mode == "webhook":
            secret = self.config.webhook_secret.get_secret_value()
            tg.call(self.config, "setup", lambda bot: bot.set_webhook(
                url, secret_token=secret, allowed_updates=ALLOWED_UPDATES, drop_pending_updates=False))
        else:
            tg.call(self.config, "setup", lambda bot: bot.delete_webhook(drop_pending_updates=False))

    def webhook_teardown(self) -> None:
        """The channel was deleted: a webhook-mode bot's webhook is removed (deleteWebhook), so
        Telegram stops posting to it and the bot's token can serve another program. A polling-mode
        bot has none (saving it in polling mode removed it)."""
        if self.config.mode == "webhook":
            tg.call(self.config, "setup", lambda bot: bot.delete_webhook(drop_pending_updates=False))

    @property
    def poll_interval(self) -> float:
        # Webhook mode has nothing to poll; the job then only says the channel is well.
        return self.capabilities.poll_interval if self.config.mode == "polling" else 3600.0

    # -- in -----------------------------------------------------------------------------------------

    def parse(self, request: WebhookRequest) -> list[Event]:
        given = request.headers.get(SECRET_HEADER, "")
        expected = self.config.webhook_secret.get_secret_value()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise AuthError("missing or wrong X-Telegram-Bot-Api-Secret-Token", status=403)
        if request.method != "POST" or request.route:
            raise PayloadError("Telegram posts updates to POST /webhooks/{channel_id} only")
        return parse.parse_body(request.body)

    def answer(self, request: WebhookRequest) -> WebhookAnswer | None:
        """A button press is answered in the webhook's own response (a Bot API method call in the
        body, which Telegram runs), so the customer's button stops spinning without another call."""
        try:
            query = parse.callback_query_id(json.loads(request.body))
        except (ValueError, RecursionError):
            return None
        if query is None:
            return None
        return WebhookAnswer(json.dumps({"method": "answerCallbackQuery", "callback_query_id": query}).encode())

    def poll(self, cursor: dict[str, Any] | None) -> Iterator[PollBatch]:
        if self.config.mode != "polling":
            return
        offset = (cursor or {}).get("offset")
        wait = self.config.long_poll_timeout
        until = time.monotonic() + POLL_FOR
        while time.monotonic() < until:
            params = {"timeout": wait, "limit": POLL_LIMIT, "allowed_updates": ALLOWED_UPDATES}
            if offset is not None:
                params["offset"] = offset
            updates = tg.get_updates(self.config, params, wait)
            if not updates:
                return
            events: list[Event] = []
            queries: list[str] = []
            for data in updates:
                offset = max(offset or 0, _update_id(data) + 1)
                events += _events(data)
                query = parse.callback_query_id(data)
                if query is not None:
                    queries.append(query)
            yield PollBatch(tuple(events), {"offset": offset})
            # Resumed: the batch is committed. Now the button presses may be answered.
            for query in queries:
                self._answer_query(query)

    def _answer_query(self, query: str) -> None:
        try:
            tg.call(self.config, "answer", lambda bot: bot.answer_callback_query(query))
        except ConnectorError as exc:  # too old (Telegram allows about 15 s), or offline: the press is stored
            log.info("telegram: could not answer callback query %s: %s", query, exc)

    def fetch(self, ref: str, max_bytes: int) -> Fetched:
        """A file Telegram holds (its file_id): getFile, then the download."""
        async def work(bot: Bot) -> Fetched:
            file = await bot.get_file(ref)
            if file.file_size is not None and file.file_size > max_bytes:
                raise PermanentError(f"the file has {file.file_size} bytes; at most {max_bytes} are kept")
            data = bytes(await file.download_as_bytearray())
            if len(data) > max_bytes:
                raise PermanentError(f"the file has {len(data)} bytes; at most {max_bytes} are kept")
            return Fetched(data)

        return tg.call(self.config, "fetch", work, timeout=self.config.timeout * 4)

    # -- out ----------------------------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> SendResult:
        return SendResult(external_id=send.send(self.config, message), status="sent")

    def send_limits(self, message: OutboundMessage) -> tuple[SendLimit, ...]:
        """The bot's rate over all chats and one message a second per chat. A reply in several
        parts takes that many messages' room: its slot is as long as its parts need."""
        parts = max(1, len(send.parts_of(message)) - len(send.sent_so_far(message)))
        bot = f"telegram:bot{self.config.bot_id}"
        return (SendLimit(bot, self.config.send_rate / parts),
                SendLimit(f"{bot}:chat{message.to.external_id}", 1.0 / (parts * send.PART_GAP)))


def _update_id(data: Any) -> int:
    value = data.get("update_id") if isinstance(data, dict) else None
    return value if isinstance(value, int) else -1


def _events(data: Any) -> list[Event]:
    """One polled update's events; one that cannot be read is stored with its error, never dropped
    and never stopping the poller."""
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    try:
        return parse.parse_update(data, raw)
    except UnsupportedEvent:
        return []
    except PayloadError as exc:
        log.warning("telegram update %s could not be read: %s", _update_id(data), exc)
        return [InboundMessage(external_id=f"update:{_update_id(data)}", sender=Identity(_sender(data)),
                               thread_key=f"telegram:unreadable:{_sender(data)}", parse_error=str(exc), raw=raw)]


def _sender(data: Any) -> str:
    for kind in parse.UPDATES:
        value = data.get(kind) if isinstance(data, dict) else None
        who = value.get("from") if isinstance(value, dict) else None
        if isinstance(who, dict) and isinstance(who.get("id"), int):
            return str(who["id"])
    return "unknown"
