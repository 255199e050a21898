"""python-telegram-bot, called from omnidesk's synchronous code, and its errors mapped in one place.

PTB is asyncio. A connector method runs in a worker thread or a web thread, so each process keeps
one event loop in a thread of its own and runs every Bot API call there (:func:`call`); the bots
are kept per token, so their HTTP connections are reused (a deliver job, a webhook's answer and a
poll of one bot share them). The alternative, ``asyncio.run`` with a new Bot for each call, pays
for a new HTTP client (its SSL context) and a TCP handshake on every call: measured with getMe
against the loopback stand-in (300 calls each, on a loaded 2-core machine), 142 ms a call
against 7 ms here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Literal, TypeVar

from telegram import Bot
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from connectors import http
from connectors.errors import ConfigError, ConnectorError, PermanentError, RecipientUnreachable, TransientError
from connectors.telegram.config import TelegramConfig

log = logging.getLogger("omnidesk.connectors.telegram")
T = TypeVar("T")
Doing = Literal["setup", "poll", "send", "fetch", "answer"]


class _Bot(Bot):
    """A Bot that also gives getUpdates' answer as Telegram sent it, each update a JSON object, so
    that each is parsed on its own (one odd update must not stop the poller; ``get_updates``
    parses the whole list at once)."""

    async def raw_updates(self, params: dict[str, Any], read_timeout: float) -> Any:
        return await self._post("getUpdates", params, read_timeout=read_timeout)


class _Loop:
    """One event loop in a daemon thread per process (started again after a fork)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pid = -1
        self.loop: asyncio.AbstractEventLoop | None = None
        self.bots: dict[tuple[str, str, float], _Bot] = {}

    def get(self) -> asyncio.AbstractEventLoop:
        with self.lock:
            if self.loop is None or self.pid != os.getpid():
                self.loop, self.pid, self.bots = asyncio.new_event_loop(), os.getpid(), {}
                threading.Thread(target=self.loop.run_forever, name="telegram-loop", daemon=True).start()
            return self.loop

    def bot(self, config: TelegramConfig) -> _Bot:
        key = (config.bot_token.get_secret_value(), config.api_url, config.timeout)
        with self.lock:
            bot = self.bots.get(key)
            if bot is None:
                timeouts = {"read_timeout": config.timeout, "write_timeout": config.timeout,
                            "connect_timeout": min(config.timeout, 10.0), "pool_timeout": config.timeout,
                            "httpx_kwargs": {"verify": http.tls()}}
                bot = _Bot(key[0], base_url=f"{config.api_url}/bot", base_file_url=f"{config.api_url}/file/bot",
                          request=HTTPXRequest(connection_pool_size=32, **timeouts),
                          get_updates_request=HTTPXRequest(connection_pool_size=2, **timeouts))
                self.bots[key] = bot
            return bot




_LOOP = _Loop()

# The Bot API puts the token in every URL's path (/bot<token>/sendMessage): httpx logs each request's
# URL at INFO, PTB its base URL at DEBUG. Tokens are replaced in those loggers' records.
_TOKEN = re.compile(r"/(file/)?bot\d+(:|%3A)[A-Za-z0-9_-]+", re.IGNORECASE)


class RedactTokens(logging.Filter):
    """Formats the record's message now, the token replaced (formatting later would read objects
    the caller may change meanwhile: PTB logs getFile's answer, then adds the URL to it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logging's to report, not ours to raise
            return True
        record.msg, record.args = _TOKEN.sub(r"/\1bot<token>", message), ()
        return True


def guard_logs() -> None:
    """Filter every logger of httpx, httpcore and PTB (a filter acts only on the logger it is on,
    not on its children: each is named)."""
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in ("httpx", "httpcore", "telegram")]
    for name in ("httpx", "telegram.Bot", *names):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


guard_logs()


def call(config: TelegramConfig, doing: Doing, work: Callable[[Bot], Awaitable[T]], *,
         timeout: float | None = None) -> T:
    """Run ``work(bot)`` on the loop thread and wait for it; Telegram's errors come back as ours."""
    loop = _LOOP.get()
    bot = _LOOP.bot(config)
    future = asyncio.run_coroutine_threadsafe(_run(work, bot), loop)
    limit = (timeout or config.timeout) + 10.0  # PTB times out first; this only guards a stuck loop
    try:
        return future.result(limit)
    except FutureTimeout:
        future.cancel()
        raise TransientError(f"Telegram did not answer within {limit:g} s") from None
    except TelegramError as exc:
        raise translate(exc, doing) from None


async def _run(work: Callable[[Bot], Awaitable[T]], bot: Bot) -> T:
    return await work(bot)


def translate(exc: TelegramError, doing: Doing) -> ConnectorError:
    """Telegram's error as ours, with a reason an agent or admin can act on."""
    text = str(exc.message if hasattr(exc, "message") else exc)
    if isinstance(exc, RetryAfter):
        seconds = exc.retry_after.total_seconds() if hasattr(exc.retry_after, "total_seconds") else exc.retry_after
        return TransientError(f"Telegram's flood control: wait {float(seconds):g} s", retry_after=float(seconds))
    if isinstance(exc, InvalidToken):
        return ConfigError("Telegram refused the bot token (unknown or revoked): copy it again from @BotFather",
                           auth=True)
    if isinstance(exc, Conflict):
        if "webhook" in text.lower():
            return ConfigError("Telegram answered 409 Conflict: this bot has a webhook set, and getUpdates does "
                               "not work while it is (another program set it, or the channel was just switched to "
                               "webhook mode); save the channel in polling mode to remove it, or use webhook mode")
        return ConfigError("Telegram answered 409 Conflict: another program is reading this bot's updates "
                           f"with getUpdates ({text}); only one may, so stop the other one")
    if isinstance(exc, ChatMigrated):
        return PermanentError(f"the chat became a supergroup (new id {exc.new_chat_id}); omnidesk answers "
                              "private chats only")
    if isinstance(exc, Forbidden):
        if doing == "send":
            return RecipientUnreachable(f"Telegram refused: {text} (the customer blocked the bot or left the chat)")
        return ConfigError(f"Telegram refused: {text}")
    if isinstance(exc, BadRequest):
        if doing == "setup":
            return ConfigError(f"Telegram refused the setting: {text}")
        if doing in ("poll", "answer"):
            return TransientError(f"Telegram refused the request: {text}")
        if doing == "fetch":
            return PermanentError(f"Telegram cannot give the file: {text}")
        return PermanentError(f"Telegram refused the message: {text}")
    if isinstance(exc, TimedOut):
        return TransientError(f"Telegram did not answer in time ({text})")
    if isinstance(exc, NetworkError):
        return TransientError(f"Telegram could not be reached or failed: {text}")
    return TransientError(f"Telegram error: {text}")


def get_updates(config: TelegramConfig, params: dict[str, Any], wait: float) -> list[Any]:
    """getUpdates (a long poll of ``wait`` seconds): the updates as Telegram sent them."""
    read = wait + config.timeout

    async def work(bot: Bot) -> Any:
        assert isinstance(bot, _Bot)
        return await bot.raw_updates(params, read)

    result = call(config, "poll", work, timeout=read)
    return result if isinstance(result, list) else []
