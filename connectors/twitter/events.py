"""X's tweets and DM events as InboundMessages: API v2 (polling) and Account Activity (webhooks).

Names every other part of omnidesk sees, the same whichever way a message came:

- external ids ``tweet:<id>`` and ``dm:<event id>`` (one namespace per channel: a redelivery by
  either path is the same message);
- thread keys ``x-thread:<conversation_id>`` (a public mention thread) and
  ``x-dm:<lower id>-<higher id>`` (a DM between the customer and the shop; a group DM: its
  dm_conversation_id);
- a tweet's ``thread_refs``: the tweet it replies to and its thread's first tweet, so a reply joins
  the conversation holding either (our own public replies are stored as ``tweet:<id>`` too).

Media come as RemoteAttachments (the address X gives: a photo's ``url``, a video's best mp4
variant), fetched by a worker with :meth:`TwitterConnector.fetch`; the text keeps a ``[video]``
line for media X gives no address of.

The shop's own tweets and DMs (our replies, or staff writing in X's app) are not customer
messages: they are left out. A single item that cannot be read is kept with its parse error
when it has an id, dropped (and counted) when it has none.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from connectors.base import Identity, InboundMessage, RemoteAttachment

log = logging.getLogger("omnidesk.connectors.twitter")

TWEET, DM = "tweet:", "dm:"
THREAD, DM_THREAD = "x-thread:", "x-dm:"


def dm_thread(one: str, other: str) -> str:
    """The thread key of the one-to-one DM conversation of two accounts (X's dm_conversation_id)."""
    low, high = sorted((one, other), key=lambda v: (len(v), v))
    return f"{DM_THREAD}{low}-{high}"


def identity(user_id: str, user: Mapping[str, Any] | None) -> Identity:
    """A customer's X account: their id, and "Name (@username)" as far as X told us."""
    user = user or {}
    name, username = user.get("name"), user.get("username") or user.get("screen_name")
    label = f"{name} (@{username})" if name and username else name or (f"@{username}" if username else None)
    return Identity(external_id=user_id, name=str(label)[:300] if label else None)


def created(item: Mapping[str, Any]) -> datetime | None:
    """When an API v2 tweet or DM event was created, if it says."""
    return _iso(item.get("created_at"))


def _iso(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC) if value else None
    except ValueError:
        return None


def _raw(item: Any) -> bytes:
    return json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode()


_TYPES = {"photo": "image/jpeg", "video": "video/mp4", "animated_gif": "video/mp4"}


def _media(keys: Iterable[Any], media: Mapping[str, Mapping[str, Any]],
           ) -> tuple[list[str], tuple[RemoteAttachment, ...]]:
    """Media of a tweet or DM as files to fetch (a worker downloads them: DM media need the
    account's signature), and a text line for those X gives no address of."""
    lines: list[str] = []
    files: list[RemoteAttachment] = []
    for key in keys:
        found = media.get(str(key)) or {}
        kind = str(found.get("type") or "media")
        url = found.get("url") or found.get("media_url_https")
        variants = found.get("variants") or (found.get("video_info") or {}).get("variants") or ()
        videos = [v for v in variants if isinstance(v, dict) and v.get("content_type") == "video/mp4" and v.get("url")]
        if kind != "photo" and videos:
            url = max(videos, key=lambda v: v.get("bit_rate") or 0)["url"]
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            lines.append(f"[{kind}]")
            continue
        name = urlsplit(url).path.rsplit("/", 1)[-1] or f"{kind}-{key}"
        content_type = mimetypes.guess_type(name)[0] or _TYPES.get(kind, "application/octet-stream")
        files.append(RemoteAttachment(ref=url, filename=name[:200], content_type=content_type))
    return lines, tuple(files)


def _with_lines(text: str, lines: list[str]) -> str:
    return "\n".join([text, *lines]) if lines else text


def _broken(external_id: str, sender: str, item: Any, error: str) -> InboundMessage:
    return InboundMessage(external_id=external_id, sender=Identity(external_id=sender or "unknown"),
                          parse_error=error, raw=_raw(item))


# -- API v2: GET /2/users/:id/mentions, GET /2/dm_events --------------------------------------------


def includes(page: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A page's expanded users (by id) and media (by media_key)."""
    found = page.get("includes") if isinstance(page.get("includes"), dict) else {}
    users = {str(u.get("id")): u for u in found.get("users") or () if isinstance(u, dict)}
    media = {str(m.get("media_key")): m for m in found.get("media") or () if isinstance(m, dict)}
    return users, media


def tweet(item: Any, users: Mapping[str, Any], media: Mapping[str, Any], shop_id: str) -> InboundMessage | None:
    """One tweet of the mentions timeline; None for the shop's own tweets and items with no id."""
    if not isinstance(item, dict) or not str(item.get("id") or "").isdigit():
        log.warning("a mention without an id was skipped")
        return None
    tweet_id, author = str(item["id"]), str(item.get("author_id") or "")
    if author == shop_id:
        return None
    try:
        refs = [str(r["id"]) for r in item.get("referenced_tweets") or () if r.get("type") == "replied_to"]
        root = str(item.get("conversation_id") or tweet_id)
        lines, files = _media((item.get("attachments") or {}).get("media_keys") or (), media)
        return InboundMessage(
            external_id=TWEET + tweet_id, sender=identity(author, users.get(author)),
            text=_with_lines(str(item.get("text") or ""), lines), remote_attachments=files,
            thread_key=THREAD + root,
            thread_refs=tuple(dict.fromkeys(TWEET + r for r in [*refs, root] if r != tweet_id)),
            sent_at=_iso(item.get("created_at")), language=_language(item.get("lang")), raw=_raw(item))
    except (AttributeError, KeyError, TypeError) as exc:
        return _broken(TWEET + tweet_id, author, item, f"unreadable tweet: {type(exc).__name__}")


def dm_event(item: Any, users: Mapping[str, Any], media: Mapping[str, Any], shop_id: str) -> InboundMessage | None:
    """One DM event; None for events that are not messages (joins, leaves), the shop's own
    messages, and items with no id."""
    if not isinstance(item, dict) or not str(item.get("id") or "").isdigit():
        log.warning("a DM event without an id was skipped")
        return None
    if item.get("event_type", "MessageCreate") != "MessageCreate":
        return None
    event_id, sender = str(item["id"]), str(item.get("sender_id") or "")
    if sender == shop_id:
        return None
    try:
        conversation = str(item.get("dm_conversation_id") or "")
        # One-to-one: the key made of the two ids, as for webhook events (which carry no
        # dm_conversation_id); a group conversation: X's id.
        one_to_one = not conversation or re.fullmatch(r"[0-9]+-[0-9]+", conversation)
        lines, files = _media((item.get("attachments") or {}).get("media_keys") or (), media)
        return InboundMessage(
            external_id=DM + event_id, sender=identity(sender, users.get(sender)),
            text=_with_lines(str(item.get("text") or ""), lines), remote_attachments=files,
            thread_key=dm_thread(sender, shop_id) if one_to_one else DM_THREAD + conversation,
            sent_at=_iso(item.get("created_at")), raw=_raw(item))
    except (AttributeError, KeyError, TypeError) as exc:
        return _broken(DM + event_id, sender, item, f"unreadable DM event: {type(exc).__name__}")


def _language(value: Any) -> str | None:
    # X says "und" (undetermined), "qme" (media only), "zxx" (no text): no language at all.
    return str(value)[:20] if value and str(value) not in {"und", "qme", "qht", "qam", "zxx"} else None


# -- Account Activity (webhook) bodies: v1.1 shapes --------------------------------------------------


def activity(body: Mapping[str, Any], shop_id: str) -> list[InboundMessage] | None:
    """The messages of an Account Activity body for the shop's account; None when it carries
    neither DMs nor tweets (likes, follows, typing: not used)."""
    if str(body.get("for_user_id") or shop_id) != shop_id:
        return []  # an event for another account subscribed to the same app
    dms, tweets = body.get("direct_message_events"), body.get("tweet_create_events")
    if dms is None and tweets is None:
        return None
    users = body.get("users") if isinstance(body.get("users"), dict) else {}
    found = [_activity_dm(item, users, shop_id) for item in dms or ()]
    found += [_activity_tweet(item, shop_id) for item in tweets or ()]
    return [m for m in found if m is not None]


def _activity_dm(item: Any, users: Mapping[str, Any], shop_id: str) -> InboundMessage | None:
    if not isinstance(item, dict) or not str(item.get("id") or "").isdigit():
        return None
    if item.get("type") != "message_create":
        return None
    event_id = str(item["id"])
    create = item.get("message_create") or {}
    sender = str(create.get("sender_id") or "") if isinstance(create, dict) else ""
    if sender == shop_id:
        return None
    try:
        data = create.get("message_data") or {}
        attachment = (data.get("attachment") or {}).get("media")
        lines, files = _media(["m"], {"m": attachment}) if isinstance(attachment, dict) else ([], ())
        sent = item.get("created_timestamp")
        return InboundMessage(
            external_id=DM + event_id, sender=identity(sender, users.get(sender)), remote_attachments=files,
            text=_with_lines(str(data.get("text") or ""), lines), thread_key=dm_thread(sender, shop_id),
            sent_at=datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None, raw=_raw(item))
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as exc:
        return _broken(DM + event_id, sender, item, f"unreadable DM event: {type(exc).__name__}")


def _activity_tweet(item: Any, shop_id: str) -> InboundMessage | None:
    if not isinstance(item, dict) or not str(item.get("id_str") or "").isdigit():
        return None
    user = item.get("user") if isinstance(item.get("user"), dict) else {}
    author = str(user.get("id_str") or "")
    if author == shop_id or "retweeted_status" in item:
        return None  # our own tweets; retweets carry no question of their own
    tweet_id = str(item["id_str"])
    try:
        extended = item.get("extended_tweet") or {}
        text = str(extended.get("full_text") or item.get("full_text") or item.get("text") or "")
        media = (extended.get("extended_entities") or item.get("extended_entities") or {}).get("media") or ()
        lines, files = _media(range(len(media)), {str(n): m for n, m in enumerate(media)})
        parent = str(item.get("in_reply_to_status_id_str") or "")
        sent = item.get("created_at")
        return InboundMessage(
            external_id=TWEET + tweet_id, sender=identity(author, user), text=_with_lines(text, lines),
            remote_attachments=files,
            # A first tweet starts its own thread; a reply joins its parent's conversation.
            thread_key=None if parent else THREAD + tweet_id,
            thread_refs=(TWEET + parent,) if parent else (),
            sent_at=parsedate_to_datetime(sent).astimezone(UTC) if sent else None,
            language=_language(item.get("lang")), raw=_raw(item))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        return _broken(TWEET + tweet_id, author, item, f"unreadable tweet: {type(exc).__name__}")
