"""``GET /api/v1/events``: the live event stream, as Server-Sent Events.

Each event is ``id: <sequence>`` and ``data: {"type": ..., "conversation_id"?, "agent_id"?, ...}``,
read from the events table (``store.events``) after the last id the client saw: ``Last-Event-ID``
(sent by the browser's ``EventSource`` on every reconnect) or ``?after=``, the header winning. A
client without either starts at the newest event, told its place by an ``id:`` line with no data
(it sets the browser's last event id without an event). A client whose place is before the pruned
horizon (``OMNIDESK_EVENTS_KEEP_HOURS``), or past the newest event, gets one ``{"type": "reset"}``
event: reload the view, then the live stream follows.

A web process is woken when events are written (``store.wakeups``: in-process, and PostgreSQL
LISTEN for the other processes), and reads the table at least every ``OMNIDESK_EVENTS_POLL``
seconds anyway, so a missed wake-up only delays. Every ``OMNIDESK_EVENTS_PING`` seconds a quiet
stream sends a ``: ping`` comment, and checks that its agent is still active (a deactivated one's
stream ends; a changed role applies).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from store import agents as agent_store
from store import conversations, events
from store.db import get_engine
from store.settings import get_settings
from store.wakeups import Wakeups
from web.deps import CurrentAgent, check_visible
from web.schemas import Id, errors

router = APIRouter(tags=["events"], responses=errors(401, 422))

MAX_SEQUENCE = 2**63 - 1
BATCH = 500  # events read at a time


class Hub:
    """A web process's (event loop's) wake-ups for its subscribers: listening while anyone listens."""

    def __init__(self) -> None:
        self._waiting: set[asyncio.Event] = set()
        self._wakeups: Wakeups | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def subscribe(self) -> asyncio.Event:
        bell = asyncio.Event()
        if not self._waiting:
            self._loop = asyncio.get_running_loop()
            self._wakeups = Wakeups(get_settings().database_url, self._ring_threadsafe)
            self._wakeups.start()
        self._waiting.add(bell)
        return bell

    def unsubscribe(self, bell: asyncio.Event) -> None:
        self._waiting.discard(bell)
        if not self._waiting and self._wakeups is not None:
            self._wakeups.stop()
            self._wakeups = None

    def _ring_threadsafe(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._ring)

    def _ring(self) -> None:
        for bell in self._waiting:
            bell.set()


def _hub(request: Request) -> Hub:
    hub = getattr(request.app.state, "event_hub", None)
    if hub is None:
        hub = request.app.state.event_hub = Hub()
    return hub


def _place(last_event_id: str | None, after: int | None) -> int | None:
    """Where the client resumes: ``Last-Event-ID`` (the browser's, newest) over ``?after=``."""
    if last_event_id is None or not last_event_id.strip():
        return after
    value = last_event_id.strip()
    if not value.isdigit() or int(value) > MAX_SEQUENCE:
        raise HTTPException(422, "Last-Event-ID: a sequence number (a whole number from 0) from this stream")
    return int(value)


def frame(sequence: int, data: dict[str, Any]) -> str:
    """One SSE event: its id and its data on one line."""
    return f"id: {sequence}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"


def shown(row: Any) -> dict[str, Any]:
    """An event row as a client reads it."""
    data: dict[str, Any] = {"type": row.type}
    if row.conversation_id is not None:
        data["conversation_id"] = row.conversation_id
    if row.agent_id is not None:
        data["agent_id"] = row.agent_id
    return data | dict(row.data or {}) | {"at": row.created_at.isoformat() + "Z"}


@router.get("/events", response_class=StreamingResponse, responses={200: {
    "content": {"text/event-stream": {}},
    "description": "Server-Sent Events: `id: <sequence>` and `data: {\"type\": ...}`; `: ping` comments"}})
async def stream_events(
    request: Request,
    agent: CurrentAgent,
    after: Annotated[int | None, Query(ge=0, le=MAX_SEQUENCE, description="resume after this sequence")] = None,
    last_event_id: Annotated[str | None, Header(description="resume after this sequence (wins over after)")] = None,
) -> StreamingResponse:
    """What the caller may see, as it happens, resumable after any disconnect (see the module)."""
    place = _place(last_event_id, after)
    engine = get_engine()
    admin = agent.role == "admin"
    if place is None:
        reader = await run_in_threadpool(events.Reader.at_head, engine, agent_id=agent.id, admin=admin)
        opening = f"retry: 2000\nid: {reader.after}\n\n"
    else:
        reader = events.Reader(engine, place, agent_id=agent.id, admin=admin)
        newest, pruned = await run_in_threadpool(lambda: (events.head(engine), events.horizon(engine)))
        opening = ": resumed\n\n"
        if place < pruned or place > newest:  # missed events are gone (or never were): reload
            reader.after = newest
            opening = frame(newest, {"type": "reset"})
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(_stream(request, reader, opening), media_type="text/event-stream", headers=headers)


@router.post("/conversations/{conversation_id}/typing", status_code=204, responses=errors(404))
def typing(conversation_id: Id, agent: CurrentAgent) -> Response:
    """The caller is typing in this conversation: an ``agent.typing`` event for those who see it
    (send it every few seconds while typing)."""
    check_visible(agent, conversations.summary(get_engine(), conversation_id), "no such conversation")
    events.record(get_engine(), events.event("agent.typing", conversation_id, agent_id=agent.id))
    return Response(status_code=204)


async def _stream(request: Request, reader: events.Reader, opening: str) -> AsyncIterator[str]:
    settings = get_settings()
    hub = _hub(request)
    bell = hub.subscribe()
    try:
        yield opening
        next_ping = time.monotonic() + settings.events_ping
        while True:
            bell.clear()  # before reading: a ring during the read is not lost
            rows = await run_in_threadpool(reader.read, BATCH)
            for row in rows:
                yield frame(row.id, shown(row))
            if len(rows) == BATCH:
                continue
            now = time.monotonic()
            if now >= next_ping:
                yield ": ping\n\n"
                next_ping = now + settings.events_ping
                found = await run_in_threadpool(agent_store.find, reader.engine, reader.agent_id, active=True)
                if found is None:
                    return
                reader.admin = found.role == "admin"
            try:
                wait = min(settings.events_poll, next_ping - now, 0.25 if reader.held else settings.events_poll)
                await asyncio.wait_for(bell.wait(), timeout=max(0.01, wait))
            except TimeoutError:
                pass  # poll the table: a wake-up may have been missed
    finally:
        hub.unsubscribe(bell)
