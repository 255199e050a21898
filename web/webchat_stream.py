"""``GET /webchat/{channel_id}/events``: a chat visitor's own live stream, as Server-Sent Events,
resumable like the agents' (``Last-Event-ID`` or ``?after=``, see ``web.events``).

It carries only the visitor's conversations' public message events, status moves (read receipts)
and the agents' typing (:func:`visitor_sees`), never private notes or another conversation. The
streams share the web process's :class:`web.events.Hub`; one :class:`Dispatch` task rings only the
streams an event concerns, so an idle stream costs nothing per event. The visitors with a stream open
are written to the store every few seconds (``store.visitors.touch``): whether a visitor is still
here is read from there (``store.visitors.present``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from connectors.webchat import WebchatConnector
from store import events, visitors
from store.db import get_engine
from store.settings import get_settings
from web.events import BATCH, MAX_SEQUENCE, frame, hub_of, rest, resume_place
from web.webchat import as_visitor

router = APIRouter(tags=["webchat"], include_in_schema=False)
# What a visitor's stream carries: these types of their conversations' events (public ones).
VISITOR_TYPES = ("message.created", "message.status", "agent.typing", "conversation.read")


class Threads:
    """Each conversation's (channel, thread key), as the visitors' streams of this process need to
    tell theirs: read once a conversation for all streams (a lock makes the streams woken by the
    same events wait for one read), kept for good (neither changes for a web chat conversation)."""

    LIMIT = 200_000

    def __init__(self) -> None:
        self.known: dict[int, tuple[int, str | None]] = {}
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._engine = 0  # the database they came from (tests point one process at several)

    async def learn(self, rows: Any) -> None:
        if self._engine != id(get_engine()):
            self._engine = id(get_engine())
            self.known.clear()
        missing = {row.conversation_id for row in rows
                   if row.type in VISITOR_TYPES and row.conversation_id is not None} - self.known.keys()
        if not missing:
            return
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._lock = loop, asyncio.Lock()
        assert self._lock is not None
        async with self._lock:
            missing -= self.known.keys()
            if missing:
                if len(self.known) > self.LIMIT:
                    self.known.clear()
                self.known.update(await run_in_threadpool(visitors.threads_of, get_engine(), sorted(missing)))


threads = Threads()


class Dispatch:
    """Rings the visitors' streams of this process that an event concerns, and only those: one task
    follows the shared Hub, learns each new event's conversation (``threads``) and rings the bells of
    that conversation's visitor. A stream rung (or starting) reads what is new from the Hub; one
    not rung knows nothing of it concerned them, so an idle stream costs nothing per event."""

    def __init__(self) -> None:
        self.bells: dict[tuple[int, str], set[asyncio.Event]] = {}
        self.after = 0  # every kept event up to here has been dispatched
        self._hub: Any = None
        self._hub_bell: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def join(self, hub: Any, mine: tuple[int, str]) -> asyncio.Event:
        bell = asyncio.Event()
        if self._task is None or self._task.done():
            self._hub, self._hub_bell = hub, hub.subscribe()
            self.after = hub.head
            self._task = asyncio.create_task(self._run())
        self.bells.setdefault(mine, set()).add(bell)
        return bell

    def leave(self, mine: tuple[int, str], bell: asyncio.Event) -> None:
        found = self.bells.get(mine)
        if found is not None:
            found.discard(bell)
            if not found:
                del self.bells[mine]
        if not self.bells and self._task is not None:
            self._task.cancel()
            self._task = None
            self._hub.unsubscribe(self._hub_bell)

    async def _run(self) -> None:
        hub, bell = self._hub, self._hub_bell
        assert bell is not None
        while True:
            bell.clear()
            rows = hub.newer(self.after)
            head = hub.head
            if rows:
                with contextlib.suppress(Exception):  # the database away: rung once it is back
                    await threads.learn(rows)
            for row in rows:
                if row.type in VISITOR_TYPES:
                    for rung in self.bells.get(threads.known.get(row.conversation_id), ()):  # type: ignore[arg-type]
                        rung.set()
            self.after = max(self.after, head)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await bell.wait()


dispatch = Dispatch()
_open: collections.Counter[tuple[int, str]] = collections.Counter()
_fresh: set[tuple[int, str]] = set()  # streams opened or closed since the last touch
_toucher: asyncio.Task[None] | None = None


async def _touch_open() -> None:
    """Visitors' presence for ``store.visitors.present``, one statement at a time: each second
    those whose stream opened or closed; every third of ``webchat_left_after`` all open ones."""
    every = max(1.0, get_settings().webchat_left_after / 3)
    last_all = time.monotonic()
    while _open or _fresh:
        now = time.monotonic()
        if now - last_all >= every:
            keys, last_all = set(_open) | _fresh, now
        else:
            keys = set(_fresh)
        _fresh.difference_update(keys)
        if keys:
            with contextlib.suppress(Exception):
                await run_in_threadpool(visitors.touch, get_engine(), list(keys))
        await asyncio.sleep(1.0)


def visitor_sees(row: Any, mine: tuple[int, str]) -> bool:
    """Whether the visitor whose conversations are ``mine`` (channel, thread key) gets the event
    ``row`` (``threads`` has learnt its conversation)."""
    if row.type not in VISITOR_TYPES or threads.known.get(row.conversation_id) != mine:
        return False
    return not (row.data or {}).get("private", False)


def visitor_frame(row: Any) -> str:
    data = row.data or {}
    shown: dict[str, Any] = {"type": row.type, "conversation_id": row.conversation_id}
    for name in ("message_id", "status", "direction"):
        if name in data:
            shown[name] = data[name]
    return frame(row.id, shown)


@router.get("/webchat/{channel_id}/events", response_class=StreamingResponse)
async def visitor_events(
    channel_id: int, request: Request,
    token: Annotated[str | None, Query(max_length=1000)] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_SEQUENCE)] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    """The visitor's own live stream, resumable by ``Last-Event-ID`` / ``?after=`` as the agents'."""
    async def work(connector: WebchatConnector, headers: dict[str, str], visitor: str) -> Response:
        place = resume_place(last_event_id, after)
        engine = get_engine()
        if place is None:
            reader = await run_in_threadpool(events.Reader.at_head, engine, agent_id=0, admin=True, shared=True)
            opening = f"retry: 2000\nid: {reader.after}\n\n"
        else:
            reader = events.Reader(engine, place, agent_id=0, admin=True, shared=True)
            newest, pruned = await run_in_threadpool(lambda: (events.head(engine), events.horizon(engine)))
            opening = ": resumed\n\n"
            if place < pruned or place > newest:
                reader.after = newest
                opening = frame(newest, {"type": "reset"})
        return StreamingResponse(_stream(request, channel_id, visitor, reader, opening), media_type="text/event-stream",
                                 headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    return await as_visitor(request, channel_id, token, work, limited=False)


async def _stream(request: Request, channel_id: int, visitor: str, reader: events.Reader,
                  opening: str) -> AsyncIterator[str | bytes]:
    global _toucher
    settings = get_settings()
    hub = hub_of(request)
    key = (channel_id, visitor)
    mine = (channel_id, visitors.thread_key(visitor))
    bell = dispatch.join(hub, mine)
    _open[key] += 1
    _fresh.add(key)
    if _toucher is None or _toucher.done():
        _toucher = asyncio.create_task(_touch_open())
    try:
        yield opening
        next_ping = time.monotonic() + settings.events_ping
        scan = True  # the first time, and whenever rung: read what is new
        while True:
            bell.clear()
            more = False
            text = ""
            if hub.covers(reader.after):
                if scan:
                    rows = hub.newer(reader.after)
                    upto = dispatch.after
                    await threads.learn(rows)
                    text = "".join(visitor_frame(row) for row in rows if row.id <= upto and visitor_sees(row, mine))
                    reader.after = max(reader.after, upto)
                else:  # not rung: nothing dispatched since concerned this visitor
                    reader.after = max(reader.after, dispatch.after)
            else:  # behind what the process keeps: its own reads of the table
                rows = await run_in_threadpool(reader.read, BATCH)
                await threads.learn(rows)
                text = "".join(visitor_frame(row) for row in rows if visitor_sees(row, mine))
                more = len(rows) == BATCH
            if text:
                yield text
            if more:
                continue
            now = time.monotonic()
            if now >= next_ping:
                yield ": ping\n\n"
                next_ping = now + settings.events_ping
            await rest(bell, reader, next_ping - now)
            scan = bell.is_set() or not hub.covers(reader.after)
    finally:
        dispatch.leave(mine, bell)
        _open[key] -= 1
        if _open[key] <= 0:
            del _open[key]
            _fresh.add(key)  # they were here until now: "left" counts from here
