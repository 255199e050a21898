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
seconds anyway, so a missed wake-up only delays. It reads the table once for all its streams
(:class:`Hub`), each of which picks what its agent may see (:func:`sees`), and writes the streams
that have caught up itself, from that one task (with hundreds of streams, waking a task of each
for every read was most of the process's work; a write to a client slow to read waits on a task
of its own). Every
``OMNIDESK_EVENTS_PING`` seconds a quiet stream sends a ``: ping`` comment, and checks that its agent
is still active (a deactivated one's stream ends; a changed role or team applies): one read of
the agent in a process serves all their streams for half a ping (``Hub.viewer_now``).
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import json
import logging
import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, NamedTuple

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from router.access import Viewer, may_see
from store import agents as agent_store
from store import conversations, events
from store.db import get_engine
from store.settings import get_settings
from store.wakeups import Wakeups
from web.asgi import Receive, Scope, Send
from web.deps import CurrentAgent, check_visible
from web.deps import viewer as viewer_of
from web.schemas import Id, errors

router = APIRouter(tags=["events"], responses=errors(401, 422))

MAX_SEQUENCE = 2**63 - 1
BATCH = 500  # events read at a time
RING_AFTER = 4  # full reads in a row after which the streams are written before reading on
KEPT = 20_000  # events a web process keeps in memory for its streams
SLICE = 50  # streams written in a row before the process's other work gets a turn
SIGHTS = 100_000  # distinct sights (see Sight) a hub numbers before it starts again
log = logging.getLogger(__name__)


class Hub:
    """A web process's (event loop's) share of the stream, while anyone listens: one reader of
    every event (``events.Reader`` as an admin's), woken by ``store.wakeups`` and reading the table
    every ``OMNIDESK_EVENTS_POLL`` s meanwhile; the newest :data:`KEPT` events kept with their
    frames; the streams' bells rung when more come. Each stream takes from what is kept what its
    agent may see (:func:`sees`, applied once per event for each view: an agent, or all admins), so
    a wake-up costs one read of the table whatever the number of streams, and a frame is made once.
    A stream behind what is kept (resumed from long ago, or started before the reader) reads the
    table itself until it has caught up; from then on it is live, and the hub writes it what
    comes (:meth:`_ring`) until it needs its own task again (its agent changed, a ping is due)."""

    def __init__(self) -> None:
        self._waiting: set[asyncio.Event] = set()
        # The streams the hub writes to itself as events come (see :class:`_Stream`), by bell.
        self._live: dict[asyncio.Event, _Stream] = {}
        self._wakeups: Wakeups | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rung: asyncio.Event | None = None
        self._feed: asyncio.Task[None] | None = None
        # (sequence, event, frame, sight number): each event's sight is numbered (see Sight).
        self.kept: collections.deque[tuple[int, Any, bytes, int]] = collections.deque()
        self._sights: dict[Sight, int] = {}  # every sight met, numbered (bounded: see take)
        self._sight_list: list[Sight] = []
        self.base: int | None = None  # every event after this id that a reader returns is kept
        self.head = 0  # the shared reader's place
        # Each view's share of what is kept (a view: one agent, or every admin), filtered once
        # per event whatever the number of its streams: its sequences, their frames, and the
        # newest kept event it has been filtered up to.
        self._views: dict[Viewer, _View] = {}
        # What since() answered, until more events come: an agent's streams (tabs, windows) and
        # all the admins' streams at one place wake together and are sent the same bytes.
        self._answered: dict[tuple[int, Viewer], bytes] = {}
        self.agents_changed: dict[int, int] = {}  # agent id -> the newest agent.updated about them
        # Each agent as last read for their streams in this process (at a ping, or after an
        # agent.updated): when it was read, the shared reader's place then, and what was found.
        self._agents: dict[int, tuple[float, int, Viewer | None]] = {}
        self._rate = _Rate()  # events a second read lately (see gather)

    def changed_since(self, agent_id: int, after: int) -> bool:
        """Whether the agent's role, teams or activity changed after event ``after`` (kept events)."""
        return self.agents_changed.get(agent_id, 0) > after

    async def viewer_now(self, agent_id: int, *, within: float) -> Viewer | None:
        """The agent as the visibility rule sees them, None once they are inactive or gone: read
        again when the last read is ``within`` seconds old or older than their newest
        ``agent.updated``, else that read is shared (an agent's streams, tabs and windows ask
        at their pings, and all at once after an update: one read serves them all)."""
        now = time.monotonic()
        known = self._agents.get(agent_id)
        if known is not None and now - known[0] < within and known[1] >= self.agents_changed.get(agent_id, 0):
            return known[2]
        head = self.head  # an update this reader has seen was committed before the read below
        found = await run_in_threadpool(_read_agent, agent_id)
        self._agents[agent_id] = (now, head, found)
        return found

    def subscribe(self, bell: asyncio.Event | None = None) -> asyncio.Event:
        """A stream's bell (made if not given), rung when new events are read."""
        bell = bell or asyncio.Event()
        if not self._waiting:
            self._loop = asyncio.get_running_loop()
            self._rung = asyncio.Event()
            self._wakeups = Wakeups(get_settings().database_url, self._ring_threadsafe)
            self._wakeups.start()
            self._feed = asyncio.create_task(self._read_all(self._rung))
        self._waiting.add(bell)
        return bell

    def unsubscribe(self, bell: asyncio.Event) -> None:
        self._waiting.discard(bell)
        self._live.pop(bell, None)
        if not self._waiting:
            if self._wakeups is not None:
                self._wakeups.stop()
                self._wakeups = None
            if self._feed is not None:
                self._feed.cancel()
                self._feed = None
            self.kept.clear()
            self._views.clear()
            self._sights.clear()
            self._sight_list.clear()
            self._answered.clear()
            self.agents_changed.clear()
            self._agents.clear()
            self.base = None

    def go_live(self, stream: _Stream) -> None:
        """From now until its bell next rings, the hub writes ``stream`` what comes (``_push``)."""
        self._live[stream.bell] = stream

    def stand_by(self, stream: _Stream) -> None:
        """The hub no longer writes ``stream`` (its own task takes its turn)."""
        self._live.pop(stream.bell, None)

    async def _ring(self) -> None:
        """New events read: each live stream written what its agent may see of them, at once,
        in this task (no task of its own woken, no timer: with hundreds of streams, that work was
        most of the process's); every other stream's bell rung. The process's other work (a
        webhook, a request) gets its turn every :data:`SLICE` streams."""
        live = self._live
        for n, bell in enumerate(list(self._waiting)):
            if n and n % SLICE == 0:
                await asyncio.sleep(0)
                if bell not in self._waiting:  # gone meanwhile
                    continue
            stream = live.get(bell)
            if stream is None or not self._push(stream):
                live.pop(bell, None)
                bell.set()

    def _push(self, stream: _Stream) -> bool:
        """Write ``stream`` what is new for it; False if its own task must (behind what is kept,
        or its agent changed: their role or teams, or deactivated)."""
        if stream.writing is not None:  # still writing the last: its task writes the rest after
            return True
        reader = stream.reader
        if not self.covers(reader.after) or self.changed_since(reader.agent_id, reader.after):
            return False
        text, reader.after = self.since(reader.after, stream.viewer)
        if text:
            stream.write(text)
        return True

    def covers(self, after: int) -> bool:
        """Whether what is kept holds every event after ``after`` (read so far)."""
        return self.base is not None and after >= self.base

    def newer(self, after: int) -> list[Any]:
        """The kept events after ``after``, oldest first."""
        rows = []
        for sequence, row, _text, _sight in reversed(self.kept):
            if sequence <= after:
                break
            rows.append(row)
        rows.reverse()
        return rows

    def since(self, after: int, viewer: Viewer) -> tuple[bytes, int]:
        """The frames of the kept events after ``after`` that ``viewer`` may see, and the place
        after them."""
        key = Viewer(0, True) if viewer.admin else viewer
        found = self._answered.get((after, key))
        if found is None:
            view = self._views.get(key)
            if view is None:
                view = self._views[key] = _View()
            view.catch_up(self.kept, self._sight_list, key)
            found = self._answered[(after, key)] = view.after(after)
        return found, max(after, self.head)

    def take(self, rows: list[Any]) -> None:
        """Keep newly read events (in order, after those kept), the oldest making room past :data:`KEPT`."""
        if not rows:
            return
        self._answered.clear()
        if len(self._sights) > SIGHTS:  # a long-lived process's many assignees and teams: number again
            self._sights.clear()
            self._sight_list.clear()
            for view in self._views.values():
                view.seen.clear()
            self.kept = collections.deque((sequence, row, text, self._number(sight(row)))
                                          for sequence, row, text, _old in self.kept)
        for row in plain(rows):
            if row.type == "agent.updated" and row.agent_id is not None:
                self.agents_changed[row.agent_id] = row.id
            if len(self.kept) == KEPT:
                self.base = self.kept.popleft()[0]
            self.kept.append((row.id, row, frame(row.id, shown(row)).encode(), self._number(sight(row))))
        if self.base is not None:
            for view in self._views.values():
                view.forget(self.base)

    def _number(self, look: Sight) -> int:
        number = self._sights.get(look)
        if number is None:
            number = self._sights[look] = len(self._sight_list)
            self._sight_list.append(look)
        return number

    async def _read_all(self, rung: asyncio.Event) -> None:
        settings = get_settings()
        engine = get_engine()
        reader: events.Reader | None = None
        series = counted = 0  # full reads in a row, and the events they read
        while True:
            try:
                if reader is None:
                    reader = await run_in_threadpool(events.Reader.at_head, engine, agent_id=0, admin=True, shared=True)
                    self.base = self.head = reader.after
                    # A stream that subscribed before this read may be behind where it starts (an
                    # event written meanwhile): no later read rings for that, so ring now, and a
                    # stream behind reads the table itself.
                    await self._ring()
                rung.clear()  # before reading: a ring during the read is not lost
                rows = await run_in_threadpool(reader.read, BATCH)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database away: the streams wait, the reader tries again
                log.warning("reading the event table failed; trying again", exc_info=True)
                await asyncio.sleep(1)
                continue
            read_at = time.monotonic()
            self.take(rows)
            # A full read is followed by another at once: the streams are written after the last
            # (one write each for a wake-up's events, however many reads they took), or after
            # RING_AFTER full reads in a row (a long backlog keeps flowing).
            series = series + 1 if len(rows) == BATCH else 0
            counted += len(rows)
            if not series:  # the wake-up's reads are over: its events count together
                self._rate.add(counted, read_at)
                counted = 0
            if reader.after != self.head and series % RING_AFTER == 0:
                self.head = reader.after
                await self._ring()
            if series:
                continue
            if rows:  # what comes within the next moment is read (and sent to every stream) together;
                # the moment counts from the read: the writes to the streams are part of it
                wait = gather(settings.events_gather, len(self._waiting), self._rate.value)
                await asyncio.sleep(max(0.0, wait - (time.monotonic() - read_at)))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.25 if reader.held else settings.events_poll):
                    await rung.wait()

    def _ring_threadsafe(self) -> None:
        loop, rung = self._loop, self._rung
        if loop is not None and rung is not None and not loop.is_closed():
            loop.call_soon_threadsafe(rung.set)


_PLAIN: dict[tuple[str, ...], Any] = {}


def plain(rows: list[Any]) -> list[Any]:
    """Read events as named tuples of their columns: each kept event is looked at by every view
    (:func:`sees`) and a SQLAlchemy ``Row``'s attributes cost about ten times a tuple's."""
    fields = rows[0]._fields  # one read of the table: the same columns
    kind = _PLAIN.get(fields)
    if kind is None:
        kind = _PLAIN[fields] = collections.namedtuple("KeptEvent", fields, rename=True)
    return [kind._make(row) for row in rows]


EVENTS_KNEE = 1000.0  # events a second (sustained) beyond which a web process's wake-ups get sparser
GATHER_MOST = 1.0  # seconds: the longest gather, however busy
RATE_READS = 9  # wake-ups the sustained event rate is the median of (see _Rate)


def gather(least: float, streams: int, rate: float = 0.0) -> float:
    """Seconds to wait after reading new events before reading again, with ``streams`` open and
    events coming at ``rate`` a second (sustained, :class:`_Rate`): ``least`` for a few streams,
    growing by a millisecond for every ten up to three times ``least``; and beyond
    :data:`EVENTS_KNEE` events a second, with the square of the rate over the knee (twice the knee,
    four times as long), up to :data:`GATHER_MOST`. Each wake-up costs every stream a write and its
    client a read, and the process a read of the table. Up to the knee (some 350-500 messages a
    second; 200 a second are 450-560 events, and a sweep's batch, one read, is a burst the
    sustained rate passes over) the delay is what it was. Beyond a busy shop's peak, fewer and
    larger writes keep the process, and the machine, free for the ingest, at the price of that
    delay: at 2,500 events a second a process wakes its streams about twice a second."""
    return min(GATHER_MOST, min(3 * least, least + streams / 10_000) * max(1.0, rate / EVENTS_KNEE) ** 2)


class _Rate:
    """Events a second, sustained: the median of the last :data:`RATE_READS` wake-ups' rates (the
    events a wake-up's reads brought, over the time since the wake-up before). A burst in one
    wake-up, such as a sweep's batch, does not move it at all; a load that lasts moves it within
    five wake-ups (half a second at 500 streams)."""

    __slots__ = ("at", "rates", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.at: float | None = None
        self.rates: collections.deque[float] = collections.deque(maxlen=RATE_READS)

    def add(self, count: int, now: float) -> None:
        if self.at is not None and now > self.at:
            self.rates.append(count / (now - self.at))
            self.value = statistics.median(self.rates)
        self.at = now


class _View:
    """One view's share of a :class:`Hub`'s kept events (see ``Hub._views``), and what
    :func:`sees` answered for it, by sight number: under load most events share a few sights (a
    team's conversations, the shared queue), so the rule runs once per sight, not per event."""

    __slots__ = ("frames", "seen", "sequences", "upto")

    def __init__(self) -> None:
        self.sequences: list[int] = []
        self.frames: list[bytes] = []
        self.seen: dict[int, bool] = {}
        self.upto = 0

    def catch_up(self, kept: collections.deque[tuple[int, Any, bytes, int]], sights: list[Sight],
                 viewer: Viewer) -> None:
        """Filter the kept events newer than those filtered so far."""
        new = []
        seen = self.seen
        for sequence, _row, text, number in reversed(kept):
            if sequence <= self.upto:
                break
            found = seen.get(number)
            if found is None:
                found = seen[number] = sees_sight(viewer, sights[number])
            if found:
                new.append((sequence, text))
        if kept:
            self.upto = max(self.upto, kept[-1][0])
        for sequence, text in reversed(new):
            self.sequences.append(sequence)
            self.frames.append(text)

    def after(self, after: int) -> bytes:
        """The frames of this view's events after ``after``."""
        return b"".join(self.frames[bisect.bisect_right(self.sequences, after):])

    def forget(self, base: int) -> None:
        """Drop what the hub no longer keeps (events up to ``base``)."""
        cut = bisect.bisect_right(self.sequences, base)
        if cut:
            del self.sequences[:cut], self.frames[:cut]


def _read_agent(agent_id: int) -> Viewer | None:
    found = agent_store.find(get_engine(), agent_id, active=True)
    return None if found is None else viewer_of(found)


class Sight(NamedTuple):
    """All that :func:`sees` reads of an event: events with the same sight go to the same viewers."""

    kind: str  # "pruned" (the horizon's mark), "personal" (events.PERSONAL), or "" for any other
    about_conversation: bool
    agent_id: int | None
    assignee_id: int | None  # the conversation's, now
    team_id: int | None


def sight(row: Any) -> Sight:
    kind = "pruned" if row.type == events.PRUNED else "personal" if row.type in events.PERSONAL else ""
    return Sight(kind, row.conversation_id is not None, row.agent_id, row.assignee_id, row.team_id)


def sees(viewer: Viewer, row: Any) -> bool:
    """Whether ``viewer`` gets the event ``row`` (with its conversation's ``assignee_id`` and
    ``team_id`` now): the choice ``events.Reader.read`` makes in SQL, with ``router.access.may_see``
    (tested against it)."""
    return sees_sight(viewer, sight(row))


def sees_sight(viewer: Viewer, look: Sight) -> bool:
    """:func:`sees`, for an event's sight."""
    if look.kind == "pruned":
        return False
    if look.kind == "personal":
        return look.agent_id == viewer.id
    return viewer.admin or not look.about_conversation or look.agent_id == viewer.id or may_see(viewer, look)


async def rest(bell: asyncio.Event, reader: events.Reader, until_ping: float) -> None:
    """A stream's wait for its bell, at most until its next ping or the table's next poll (a
    wake-up may have been missed; 0.25 s while the reader waits on a transaction still open)."""
    settings = get_settings()
    wait = min(settings.events_poll, until_ping, 0.25 if reader.held else settings.events_poll)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.01, wait)):  # no task a wait, as wait_for makes
            await bell.wait()


def hub_of(request: Request) -> Hub:
    """The web process's Hub (made on first use)."""
    hub = getattr(request.app.state, "event_hub", None)
    if hub is None:
        hub = request.app.state.event_hub = Hub()
    return hub


def resume_place(last_event_id: str | None, after: int | None) -> int | None:
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
) -> Response:
    """What the caller may see, as it happens, resumable after any disconnect (see the module)."""
    place = resume_place(last_event_id, after)
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
    viewer = await run_in_threadpool(viewer_of, agent)
    return EventStream(hub_of(request), reader, viewer, opening)


@router.post("/conversations/{conversation_id}/typing", status_code=204, responses=errors(404))
def typing(conversation_id: Id, agent: CurrentAgent) -> Response:
    """The caller is typing in this conversation: an ``agent.typing`` event for those who see it
    (send it every few seconds while typing)."""
    check_visible(agent, conversations.summary(get_engine(), conversation_id), "no such conversation")
    events.record(get_engine(), events.event("agent.typing", conversation_id, agent_id=agent.id))
    return Response(status_code=204)


class _Stream:
    """One client's stream. Its own task (:meth:`run`) writes the opening, pings, and whatever
    needs a read of the database (events from before what the hub keeps, the agent read again);
    once it has caught up it goes live, and the hub writes it new events itself (``Hub._push``)
    until its bell rings: then its task takes its turn again."""

    __slots__ = ("bell", "closed", "reader", "send", "viewer", "writing")

    def __init__(self, send: Send, reader: events.Reader, viewer: Viewer) -> None:
        self.send = send
        self.reader = reader
        self.viewer = viewer
        self.bell = asyncio.Event()
        self.closed = False  # the client went away
        self.writing: asyncio.Future[None] | None = None  # a write waiting for the client to read

    def write(self, body: bytes) -> None:
        """Send ``body`` now: the server's ``send`` only waits while the client is slow to read,
        and only then is a task made to finish it (its bell rings when it has)."""
        try:
            self.writing = eager(self.send(_chunk(body)), self._written)
        except Exception:  # the connection is done for: its task ends the stream
            log.debug("writing to an event stream failed", exc_info=True)
            self.close()

    def _written(self, done: asyncio.Future[None]) -> None:
        self.writing = None
        if not done.cancelled() and done.exception() is not None:  # the connection is done for
            log.debug("writing to an event stream failed", exc_info=done.exception())
            self.closed = True
        self.bell.set()

    async def _send(self, body: bytes) -> None:
        await self.send(_chunk(body))

    def close(self, _done: object = None) -> None:
        self.closed = True
        self.bell.set()

    async def run(self, hub: Hub, opening: str) -> None:
        settings = get_settings()
        reader, bell = self.reader, self.bell
        await self._send(opening.encode())
        next_ping = time.monotonic() + settings.events_ping
        while not self.closed:
            hub.stand_by(self)  # this task's turn: the hub does not write meanwhile
            bell.clear()  # before reading: a ring during the read is not lost
            if self.writing is not None:  # the hub's last write still on its way: no ping needed
                await rest(bell, reader, settings.events_ping)
                continue
            text, more = b"", False
            if hub.covers(reader.after):
                if hub.changed_since(reader.agent_id, reader.after):  # new teams or role: from here on
                    now_seen = await hub.viewer_now(reader.agent_id, within=settings.events_ping / 2)
                    if now_seen is None:
                        return
                    self.viewer = now_seen
                    reader.admin = now_seen.admin
                text, reader.after = hub.since(reader.after, self.viewer)
            else:  # behind what the process keeps: its own reads of the table
                rows = await run_in_threadpool(reader.read, BATCH)
                text, more = "".join(frame(row.id, shown(row)) for row in rows).encode(), len(rows) == BATCH
            if text:
                await self._send(text)
            if more:
                continue
            now = time.monotonic()
            if now >= next_ping:
                await self._send(b": ping\n\n")
                next_ping = now + settings.events_ping
                # Still active? (a changed role or teams apply.) Read at most every half ping for
                # all the agent's streams here, so a stream ends within a ping and a half.
                now_seen = await hub.viewer_now(reader.agent_id, within=settings.events_ping / 2)
                if now_seen is None:
                    return
                self.viewer = now_seen
                reader.admin = now_seen.admin
                continue  # events may have come during that read
            if hub.covers(reader.after) and not bell.is_set():
                hub.go_live(self)
            await rest(bell, reader, next_ping - now)


class EventStream(Response):
    """The response of ``GET /api/v1/events``: a :class:`_Stream` until the client goes away (or
    its agent is deactivated)."""

    def __init__(self, hub: Hub, reader: events.Reader, viewer: Viewer, opening: str) -> None:
        # (not Response's: it would give an empty body's content-length)
        self.status_code, self.background = 200, None
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                            (b"x-accel-buffering", b"no")]
        self.hub, self.reader, self.viewer, self.opening = hub, reader, viewer, opening

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        stream = _Stream(send, self.reader, self.viewer)
        self.hub.subscribe(stream.bell)
        gone = asyncio.ensure_future(_disconnect(receive))
        gone.add_done_callback(stream.close)
        try:
            await stream.run(self.hub, self.opening)
        except Exception:
            if not stream.closed:
                raise
            log.debug("an event stream whose client had gone failed", exc_info=True)  # nobody to tell
        finally:
            self.hub.unsubscribe(stream.bell)
            gone.cancel()
            if stream.writing is not None:
                stream.writing.cancel()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _chunk(body: bytes) -> dict[str, Any]:
    """An ASGI message of more of the stream's body."""
    return {"type": "http.response.body", "body": body, "more_body": True}


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def eager(step: Coroutine[Any, Any, None], done: Callable[[asyncio.Future[None]], None]) -> asyncio.Future[None] | None:
    """Run ``step`` at once, up to its first wait, as Python 3.12's eager tasks do: None if it
    finished without waiting (an error raised), else a task finishing it, with ``done`` called then."""
    try:
        waiting = step.send(None)
    except StopIteration:
        return None
    task = asyncio.ensure_future(_resume(step, waiting))
    task.add_done_callback(done)
    return task


async def _resume(step: Coroutine[Any, Any, None], waiting: Any) -> None:
    """The rest of a coroutine that waited on ``waiting`` (an asyncio future, or None for a bare
    yield), stepped as ``asyncio.Task`` steps one."""
    try:
        while True:
            if waiting is None:
                await asyncio.sleep(0)
            else:
                waiting._asyncio_future_blocking = False  # as a task does with what its coroutine yields
                with contextlib.suppress(Exception):  # the coroutine sees it, resumed
                    await waiting
            waiting = step.send(None)
    except StopIteration:
        pass
    finally:
        step.close()

