"""Replies to Telegram: a text past Telegram's limit goes in parts, then the files, one message
each; the parts already sent are remembered so a retry sends only the rest.

Progress lives in the reply's external id, ``<chat id>:<message id>+<message id>...`` (one id per
part sent). A part refused for a while (flood control, a network error) raises TransientError
carrying the progress (``sent``), which the deliver job keeps as the external id it hands the
next attempt. A worker that dies between parts leaves the outcome unknown: Telegram cannot drop a
repeated message, so that reply is failed for the agent to decide (``repeat_safe`` is False).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from telegram import Bot, InputFile

from connectors.base import Attachment, OutboundMessage
from connectors.errors import PermanentError, TransientError
from connectors.telegram import bot as tg
from connectors.telegram.config import TelegramConfig

MAX_TEXT = 4096  # UTF-16 code units, as Telegram counts
PHOTO_TYPES = {"image/jpeg", "image/png", "image/webp"}
PART_GAP = 1.0  # seconds between two messages to one chat (Telegram: about one a second)

Part = Callable[[Bot], Awaitable[int]]


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """``text`` in parts of at most ``limit`` UTF-16 units, cut at a line break, else a space, in
    the second half of a part when there is one; never inside a character."""
    parts: list[str] = []
    while utf16_len(text) > limit:
        end, units = 0, 0
        while end < len(text) and units + utf16_len(text[end]) <= limit:
            units += utf16_len(text[end])
            end += 1
        cut = max(text.rfind("\n", 0, end), -1)
        if cut < end // 2:
            cut = text.rfind(" ", 0, end)
        if cut < end // 2:
            cut = end
        parts.append(text[:cut])
        text = text[cut + 1:] if cut < end and text[cut] in "\n " else text[cut:]
    if text or not parts:
        parts.append(text)
    return parts


def parts_of(message: OutboundMessage) -> list[Part]:
    """What one reply sends, in order: its text's parts, then each file."""
    chat = chat_id(message)
    texts = split_text(message.text) if message.text.strip() or not message.attachments else []
    parts: list[Part] = [_text(chat, t) for t in texts]
    parts += [_file(chat, a) for a in message.attachments]
    return parts


def chat_id(message: OutboundMessage) -> int:
    try:
        return int(message.to.external_id)
    except ValueError:
        raise PermanentError(f"{message.to.external_id!r} is not a Telegram chat id") from None


def _text(chat: int, text: str) -> Part:
    async def send(bot: Bot) -> int:
        return (await bot.send_message(chat, text)).message_id
    return send


def _file(chat: int, attachment: Attachment) -> Part:
    async def send(bot: Bot) -> int:
        upload = InputFile(attachment.data, filename=attachment.filename)
        if attachment.content_type in PHOTO_TYPES:
            return (await bot.send_photo(chat, upload)).message_id
        return (await bot.send_document(chat, upload)).message_id
    return send


def sent_so_far(message: OutboundMessage) -> list[str]:
    """The message ids of the parts an earlier attempt sent (from the reply's external id)."""
    if not message.external_id or ":" not in message.external_id:
        return []
    return [p for p in message.external_id.partition(":")[2].split("+") if p]


def progress(chat: int, done: list[str]) -> str:
    return f"{chat}:{'+'.join(done)}"


def send(config: TelegramConfig, message: OutboundMessage) -> str:
    """Send what is left of ``message``; returns its external id (every part's message id)."""
    chat = chat_id(message)
    parts = parts_of(message)
    done = sent_so_far(message)
    first = True
    for n, part in enumerate(parts):
        if n < len(done):
            continue
        if not first:
            time.sleep(PART_GAP)
        first = False
        try:
            done.append(str(tg.call(config, "send", part)))
        except TransientError as exc:
            raise TransientError(exc.reason, exc.retry_after, sent=progress(chat, done) if done else None) from None
        except PermanentError as exc:
            if not done:
                raise
            raise type(exc)(f"{exc.reason} (after {len(done)} of {len(parts)} parts were sent)") from None
    return progress(chat, done)
