"""Polling mentions and DMs, with cursors that move only after what they cover is stored.

Both timelines come newest first, a page at a time. A poll walks back to where the last one
stopped, keeps what it found in memory (bounded: MAX_PAGES), then hands it over oldest first in
batches, each with the cursor that covers it; the caller commits a batch and its cursor together.
A poll stopped anywhere (a worker killed, X's rate limit) leaves a cursor behind everything not
yet stored, so the next one fetches it again; what was stored already is a no-op (unique external
id per channel).

- Mentions: ``since_id`` (X returns only newer tweets); the cursor's ``mentions_since_id`` is the
  newest tweet id stored.
- DMs: ``GET /2/dm_events`` has no since_id. The cursor keeps the ids of the newest SEEN_KEEP DM
  events stored (``dm_seen``); a walk stops at a page holding one of them, or an id older than
  the oldest kept (the horizon), so a deleted DM cannot send it back 30 days.

When X's rate limit stops a walk half way (a 429, or a page saying the window is used up while
more pages are to come), what it fetched is handed over with the cursor as it was (stored once,
fetched again next time), then the TransientError (retry after the reset).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from connectors.base import InboundMessage, PollBatch
from connectors.errors import TransientError
from connectors.twitter import api, events

MAX_PAGES = 20  # per timeline a poll: 2,000 items; the rest comes in the next poll
PAGE_SIZE = 100
SEEN_KEEP = 500


Fetch = Callable[[str | None], dict[str, Any]]  # one page, given the pagination token


def _id(external_id: str) -> int:
    return int(external_id.split(":", 1)[1])


def walk(fetch: Fetch, parse: Callable[[Any, dict, dict], InboundMessage | None],
         done: Callable[[list[Any]], bool], *, ids: list[int] | None = None,
         ) -> tuple[list[InboundMessage], int, TransientError | None]:
    """Fetch pages until ``done(page items)``, the last page, or MAX_PAGES. Returns the messages
    (deduplicated), the highest item id seen (0 for none), and the TransientError that stopped
    the walk early, if one did."""
    found: dict[str, InboundMessage] = {}
    newest, token = 0, None
    for _ in range(MAX_PAGES):
        try:
            page = fetch(token)
        except TransientError as exc:
            return list(found.values()), newest, exc
        items = page.get("data") if isinstance(page.get("data"), list) else []
        users, media = events.includes(page)
        walked = _ids(items)
        newest = max([newest, *walked])
        if ids is not None:
            ids.extend(walked)
        for item in items:
            message = parse(item, users, media)
            if message is not None:
                found.setdefault(message.external_id, message)
        meta = page.get("meta") if isinstance(page.get("meta"), dict) else {}
        token = meta.get("next_token")
        if not items or not token or done(items):
            break
        if isinstance(page.get(api.SPENT), TransientError):  # the next page would be refused
            return list(found.values()), newest, page[api.SPENT]
    return list(found.values()), newest, None


def poll(fetch_mentions: Fetch | None, fetch_dms: Fetch | None, shop_id: str,
         cursor: dict[str, Any] | None, *, first_since: datetime | None = None) -> Iterator[PollBatch]:
    """Mentions, then DMs (a timeline left out when its fetch is None), in committed batches.
    ``first_since``: a timeline polled for the first time is imported back to then, no further.
    Raises the TransientError that stopped a walk once what both fetched is handed over (the two
    have rate limits of their own: a limit on one does not hold up the other)."""
    cursor = dict(cursor or {})
    first_stop: TransientError | None = None
    if fetch_mentions is not None:
        since = int(cursor.get("mentions_since_id") or 0)
        cut = first_since if not since else None
        found, newest, stopped = walk(fetch_mentions, lambda i, u, m: events.tweet(i, u, m, shop_id),
                                      lambda items: _older(items, cut))
        found = _recent(found, cut)
        for chunk in _chunks(found):
            if stopped is None:  # a walk stopped half way moves nothing: older pages are missing
                cursor = {**cursor, "mentions_since_id": str(max(since, *(_id(m.external_id) for m in chunk)))}
            yield PollBatch(events=tuple(chunk), cursor=cursor)
        if stopped is not None:
            first_stop = stopped
        elif newest > int(cursor.get("mentions_since_id") or 0):  # the newest were the shop's own
            cursor = {**cursor, "mentions_since_id": str(newest)}
            yield PollBatch(events=(), cursor=cursor)
    if fetch_dms is not None:
        seen = [int(i) for i in cursor.get("dm_seen") or ()]
        horizon = min(seen) if len(seen) >= SEEN_KEEP else 0
        known = set(seen)

        cut = first_since if not known else None

        def done(items: list[Any]) -> bool:
            return any(i in known or i < horizon for i in _ids(items)) or _older(items, cut)

        walked: list[int] = []
        found, _, stopped = walk(fetch_dms, lambda i, u, m: events.dm_event(i, u, m, shop_id), done, ids=walked)
        found = [m for m in _recent(found, cut) if _id(m.external_id) not in known and _id(m.external_id) >= horizon]
        for chunk in _chunks(found):
            if stopped is None:
                seen = _keep(seen, (_id(m.external_id) for m in chunk))
                cursor = {**cursor, "dm_seen": [str(i) for i in seen]}
            yield PollBatch(events=tuple(chunk), cursor=cursor)
        everything = _keep(seen, (i for i in walked if i >= horizon))
        if stopped is not None:
            first_stop = first_stop or stopped
        elif everything != seen:  # events that are not messages (the shop's own, joins) count as seen too
            yield PollBatch(events=(), cursor={**cursor, "dm_seen": [str(i) for i in everything]})
    if first_stop is not None:
        raise first_stop


def _older(items: list[Any], cut: datetime | None) -> bool:
    """Whether a page reaches back past ``cut`` (a first import's limit)."""
    if cut is None:
        return False
    times = [events.created(i) for i in items if isinstance(i, dict)]
    return any(t is not None and t < cut for t in times)


def _recent(messages: list[InboundMessage], cut: datetime | None) -> list[InboundMessage]:
    return messages if cut is None else [m for m in messages if m.sent_at is None or m.sent_at >= cut]


def _chunks(messages: list[InboundMessage]) -> Iterator[list[InboundMessage]]:
    """Oldest first, PAGE_SIZE at a time."""
    ordered = sorted(messages, key=lambda m: _id(m.external_id))
    for start in range(0, len(ordered), PAGE_SIZE):
        yield ordered[start:start + PAGE_SIZE]


def _ids(items: list[Any]) -> list[int]:
    return [int(i["id"]) for i in items if isinstance(i, dict) and str(i.get("id") or "").isdigit()]


def _keep(seen: list[int], new: Iterator[int] | Any) -> list[int]:
    return sorted(set(seen) | set(new), reverse=True)[:SEEN_KEEP]
