"""Telegram updates -> omnidesk events, one handler per update type (the dispatch table
``UPDATES``); an update of another type is an UnsupportedEvent (answered 200, ignored).

- A message in a private chat is an :class:`InboundMessage` whose external id is
  ``<chat id>:<message id>``, so that an edit finds the message it changes, and whose thread key is
  the chat. Telegram sends an update again until it is acknowledged (webhook) or confirmed
  (getUpdates offset): the same update gives the same external ids, so it is stored once.
- Its content, by kind (``CONTENT``): text; a photo (the largest size), a document, a voice note,
  audio, video or animation as a file Telegram holds (:class:`RemoteAttachment`, fetched later by
  a worker), with the caption as text; a sticker as its emoji; a location and a venue as text with a
  map link; a shared contact as text. Anything else is stored with a note naming its kind.
- An edited message is a :class:`MessageEdit` of the original.
- A callback query (a press of an inline button) is a message "pressed: <data>"; it is answered
  (answerCallbackQuery) once stored.
- The customer blocking the bot (or starting it again) is a :class:`ReachabilityUpdate`.
- Group, supergroup and channel chats are ignored, with one log line each.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from telegram import CallbackQuery, ChatMemberUpdated, Message, Update, User

from connectors.base import Event, Identity, InboundMessage, MessageEdit, ReachabilityUpdate, RemoteAttachment
from connectors.errors import PayloadError, UnsupportedEvent

log = logging.getLogger("omnidesk.connectors.telegram")


def parse_body(body: bytes) -> list[Event]:
    """A webhook body (one update)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise PayloadError("invalid update: body is not JSON") from None
    return parse_update(data, body)


def parse_update(data: Any, raw: bytes) -> list[Event]:
    """One update (a decoded JSON object) as events. PayloadError for one that is not an update;
    UnsupportedEvent for an update type or chat omnidesk does not serve."""
    if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
        raise PayloadError("invalid update: not a JSON object with an integer update_id")
    kind = next((k for k in UPDATES if k in data), None)
    if kind is None:
        other = next((k for k in data if k != "update_id"), "empty")
        raise UnsupportedEvent(str(other)[:100])
    try:
        update = Update.de_json(data, None)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PayloadError(f"invalid update {data['update_id']}: {type(exc).__name__}: {exc}"[:300]) from None
    if update is None:
        raise PayloadError("invalid update: empty")
    return UPDATES[kind](update, raw)


def callback_query_id(data: Any) -> str | None:
    """The id of a callback query to answer once the update is stored, if the update is one."""
    if isinstance(data, dict) and isinstance(data.get("callback_query"), dict):
        value = data["callback_query"].get("id")
        return str(value) if value is not None else None
    return None


def external_id(chat_id: int, message_id: int) -> str:
    return f"{chat_id}:{message_id}"


def thread_key(chat_id: int) -> str:
    return f"telegram:{chat_id}"


def _private(message: Message, update_id: int) -> None:
    if message.chat.type != "private":
        log.info("telegram update %s ignored: a message in a %s chat (id %s); omnidesk answers private chats only",
                 update_id, message.chat.type, message.chat.id)
        raise UnsupportedEvent(f"message in a {message.chat.type} chat")


def _identity(user: User | None, message: Message) -> Identity:
    if user is None:  # a private chat's messages always carry it; the chat then says who
        chat = message.chat
        return Identity(str(chat.id), name=_name(chat.first_name, chat.last_name, chat.username))
    return Identity(str(user.id), name=_name(user.first_name, user.last_name, user.username))


def _name(first: str | None, last: str | None, username: str | None) -> str | None:
    name = " ".join(p for p in (first, last) if p)
    return name or (f"@{username}" if username else None)


def _message(update: Update, raw: bytes) -> list[Event]:
    message = update.message
    assert message is not None
    _private(message, update.update_id)
    text, files = content(message)
    return [InboundMessage(
        external_id=external_id(message.chat.id, message.message_id),
        sender=_identity(message.from_user, message),
        text=text,
        thread_key=thread_key(message.chat.id),
        remote_attachments=files,
        sent_at=message.date,
        language=message.from_user.language_code if message.from_user else None,
        raw=raw,
    )]


def _edited(update: Update, raw: bytes) -> list[Event]:
    message = update.edited_message
    assert message is not None
    _private(message, update.update_id)
    text, _files = content(message)  # a changed file is not fetched again: the text says what it is
    return [MessageEdit(external_id=external_id(message.chat.id, message.message_id), text=text,
                        edited_at=message.edit_date or message.date, raw=raw)]


def _callback(update: Update, raw: bytes) -> list[Event]:
    query: CallbackQuery | None = update.callback_query
    assert query is not None
    message = query.message if isinstance(query.message, Message) else None
    if message is not None:
        _private(message, update.update_id)
    chat_id = message.chat.id if message is not None else query.from_user.id
    pressed = query.data if query.data is not None else (query.game_short_name or "")
    return [InboundMessage(
        external_id=f"callback:{query.id}",
        sender=Identity(str(query.from_user.id),
                        name=_name(query.from_user.first_name, query.from_user.last_name, query.from_user.username)),
        text=f"pressed: {pressed}",
        thread_key=thread_key(chat_id),
        thread_refs=(external_id(chat_id, message.message_id),) if message is not None else (),
        language=query.from_user.language_code,
        raw=raw,
    )]


def _membership(update: Update, raw: bytes) -> list[Event]:
    change: ChatMemberUpdated | None = update.my_chat_member
    assert change is not None
    if change.chat.type != "private":
        raise UnsupportedEvent(f"membership in a {change.chat.type} chat")
    status = change.new_chat_member.status
    if status in ("kicked", "left"):
        return [ReachabilityUpdate(str(change.chat.id), reachable=False, reason="the customer blocked the bot",
                                   raw=raw)]
    if status == "member":
        return [ReachabilityUpdate(str(change.chat.id), reachable=True, raw=raw)]
    raise UnsupportedEvent(f"membership status {status}")


UPDATES: dict[str, Callable[[Update, bytes], list[Event]]] = {
    "message": _message,
    "edited_message": _edited,
    "callback_query": _callback,
    "my_chat_member": _membership,  # the customer blocked the bot (or started it again)
}

# Files: (attribute, default file name, default content type).
FILES: tuple[tuple[str, str, str], ...] = (
    ("document", "document", "application/octet-stream"),
    ("voice", "voice.ogg", "audio/ogg"),
    ("audio", "audio.mp3", "audio/mpeg"),
    ("video", "video.mp4", "video/mp4"),
    ("video_note", "video-note.mp4", "video/mp4"),
    ("animation", "animation.mp4", "video/mp4"),
)


def content(message: Message) -> tuple[str, tuple[RemoteAttachment, ...]]:
    """A message's text and the files it carries."""
    caption = message.caption or ""
    if message.text is not None:
        return message.text, ()
    if message.photo:
        largest = max(message.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        return caption, (RemoteAttachment(largest.file_id, f"photo-{largest.file_unique_id}.jpg", "image/jpeg",
                                          largest.file_size),)
    for name, filename, content_type in FILES:
        item = getattr(message, name, None)
        if item is not None:
            given = getattr(item, "file_name", None) or f"{item.file_unique_id}-{filename}"
            return caption, (RemoteAttachment(item.file_id, given, getattr(item, "mime_type", None) or content_type,
                                              item.file_size),)
    for name, describe in CONTENT.items():
        value = getattr(message, name, None)
        if value is not None:
            return describe(value), ()
    kind = next((k for k, v in (message.api_kwargs or {}).items() if v), None) or _kind(message)
    return f"[a Telegram message of a kind omnidesk does not show: {kind}]", ()


def _kind(message: Message) -> str:
    skip = {"message_id", "date", "chat", "from", "from_user", "message_thread_id", "entities"}
    data = message.to_dict()
    return next((k for k in data if k not in skip), "unknown")


def _map(lat: float, lon: float) -> str:
    return f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=17/{lat}/{lon}"


CONTENT: dict[str, Callable[[Any], str]] = {
    "sticker": lambda s: f"[sticker {s.emoji or ''}]".replace(" ]", "]"),
    "venue": lambda v: f"Venue: {v.title}, {v.address}\n{_map(v.location.latitude, v.location.longitude)}",
    "location": lambda loc: f"Location: {loc.latitude}, {loc.longitude}\n{_map(loc.latitude, loc.longitude)}",
    "contact": lambda c: "Contact: " + ", ".join(
        p for p in (_name(c.first_name, c.last_name, None), c.phone_number) if p),
    "dice": lambda d: f"[dice {d.emoji} {d.value}]",
    "poll": lambda p: f"[poll: {p.question}]",
}
