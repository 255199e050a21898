"""The live event stream through the real server, on the embedded default and on PostgreSQL + Redis:
events in sequence order, filtered by what the caller may see, resumed exactly after a disconnect
(``Last-Event-ID`` or ``?after=``), a reset past the pruned horizon, pings, and wake-ups within a
second while the table poll is set far longer (in-process; on PostgreSQL also from another process)."""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from store import events
from store.models import utcnow
from tests import support
from tests.support import CallbackServer, Running, running_omnidesk

ROOT = Path(__file__).resolve().parents[2]
Event = tuple[int | None, dict[str, Any] | None]  # (id, data); data None: an id line alone


class Subscriber:
    """An SSE client in a thread: every event, id-only line and comment it reads, in order."""

    def __init__(self, running: Running, token: str | None = None, *, query: str = "",
                 headers: dict[str, str] | None = None) -> None:
        self.received: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.status: int | None = None
        self.opened = threading.Event()
        self._client = httpx.Client(base_url=running.url, timeout=httpx.Timeout(10, read=None))
        self._args = ("/api/v1/events" + query,
                      {"Authorization": f"Bearer {token or running.admin_token}", **(headers or {})})
        threading.Thread(target=self._run, daemon=True).start()
        OPEN.append(self)
        assert self.opened.wait(10), "the stream did not answer"

    def _run(self) -> None:
        path, headers = self._args
        try:
            with self._client.stream("GET", path, headers=headers) as response:
                self.status = response.status_code
                self.opened.set()
                sequence: int | None = None
                data: dict[str, Any] | None = None
                for line in response.iter_lines():
                    if line.startswith(":"):
                        self.received.put(("comment", line[1:].strip()))
                    elif line.startswith("id:"):
                        sequence = int(line[3:].strip())
                    elif line.startswith("data:"):
                        data = json.loads(line[5:])
                    elif line == "" and (sequence is not None or data is not None):
                        self.received.put(("event", (sequence, data)))
                        sequence, data = None, None
        except Exception:  # noqa: BLE001 - closed by the test
            pass
        finally:
            self.opened.set()
            self.received.put(("closed", None))

    def events_until(self, done: Callable[[list[Event]], bool], timeout: float = 10.0) -> list[Event]:
        """The events read until ``done(events so far)``; fails after ``timeout``."""
        got: list[Event] = []
        deadline = time.monotonic() + timeout
        while not done(got):
            try:
                kind, value = self.received.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"timed out; events so far: {got}") from None
            if kind == "closed":
                raise AssertionError(f"the stream closed; events so far: {got}")
            if kind == "event":
                got.append(value)
        return got

    def close(self) -> None:
        self._client.close()


OPEN: list[Subscriber] = []


def _close_streams() -> None:
    """Close every stream the test opened (an open one would keep its server's shared reader
    reading the test's database after it is dropped)."""
    while OPEN:
        OPEN.pop().close()


@pytest.fixture
def desk(backend: str, database_url: str, tmp_path: Path) -> Iterator[Running]:
    """omnidesk with pings and table polls only every 30 s: what arrives within a second or two
    came by a wake-up."""
    with running_omnidesk(backend, database_url, tmp_path, OMNIDESK_EVENTS_PING="30",
                          OMNIDESK_EVENTS_POLL="30") as running:
        try:
            yield running
        finally:
            _close_streams()  # before the server stops and its database is dropped


def _inbound(running: Running, channel: tuple[int, str], n: str, thread: str | None = None) -> None:
    """A customer's message; ``thread``: the customer and thread it continues (default: a new one)."""
    thread = thread or n
    payload = {"message_id": f"m-{n}", "from": {"id": f"cust-{thread}"}, "text": f"hi {n}", "thread": thread}
    assert running.post_inbound(*channel, payload).status_code == 202


def _has(kind: str, **fields: Any) -> Callable[[list[Event]], bool]:
    return lambda got: any(d is not None and d.get("type") == kind and all(d.get(k) == v for k, v in fields.items())
                           for _, d in got)


def _stored_ids(running: Running, after: int) -> list[int]:
    with running.engine.connect() as conn:
        return list(conn.execute(select(events.events.c.id).where(events.events.c.id > after)
                                 .order_by(events.events.c.id)).scalars())


def test_events_arrive_in_order_within_a_second_and_resume_exactly(desk: Running, callback: CallbackServer) -> None:
    channel = desk.api_channel(callback.url)
    agent = desk.agent("Ann")  # online: routing assigns to her
    live = Subscriber(desk)
    [(start, opening)] = live.events_until(lambda got: len(got) == 1)
    assert opening is None and start == events.head(desk.engine)  # an id line: the client's place
    began = time.monotonic()
    _inbound(desk, channel, "1")
    got = live.events_until(_has("conversation.updated", assignee_id=agent["id"]))
    assert time.monotonic() - began < 3  # stored, routed and told: by wake-ups, not the 30 s poll
    kinds = [d["type"] for _, d in got]
    assert kinds[:2] == ["conversation.created", "message.created"] and kinds[-1] == "conversation.updated"
    ids = [i for i, _ in got]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    conversation = got[0][1]["conversation_id"]  # type: ignore[index]
    assert all(d["conversation_id"] == conversation for _, d in got)  # type: ignore[index]

    # A disconnect: what happened meanwhile comes exactly once, in order, after the last id seen.
    last_seen = ids[-1]
    live.close()
    desk.ok("POST", f"/conversations/{conversation}/messages", json={"text": "on its way"})
    desk.ok("PATCH", f"/conversations/{conversation}", json={"priority": 5})
    _inbound(desk, channel, "2")
    time.sleep(1.0)  # routed and delivered meanwhile
    missed = _stored_ids(desk, last_seen)
    resumed_once = Subscriber(desk, query=f"?after={last_seen}")
    kinds = [d["type"] for _, d in resumed_once.events_until(lambda got: len(got) >= len(missed))]
    resumed_once.close()
    assert {"message.created", "message.status", "conversation.created"} <= set(kinds)
    # The browser's header wins over the ?after= of the URL it first opened.
    for how in ({"headers": {"Last-Event-ID": str(last_seen)}, "query": "?after=0"}, {"query": f"?after={last_seen}"}):
        again = Subscriber(desk, **how)  # type: ignore[arg-type]
        resumed = again.events_until(lambda got: len(got) >= len(missed))
        assert [i for i, _ in resumed] == missed  # exactly the missed ones, once, in order
        desk.ok("PUT", f"/agents/{agent['id']}/presence", json={"status": "online"})
        [(next_id, news)] = again.events_until(lambda got: len(got) == 1)
        assert next_id > missed[-1] and news is not None and news["type"] == "agent.presence"  # nothing repeated
        missed.append(next_id)
        again.close()


def test_an_agent_gets_only_what_they_may_see(desk: Running, callback: CallbackServer) -> None:
    channel = desk.api_channel(callback.url)
    ann = desk.agent("Ann", online=False)
    bob = desk.agent("Bob", online=False)
    _inbound(desk, channel, "x")
    _inbound(desk, channel, "y")
    x, y = sorted(i["id"] for i in desk.ok("GET", "/conversations")["items"])
    watching_ann, watching_bob = Subscriber(desk, ann["token"]), Subscriber(desk, bob["token"])
    desk.ok("POST", f"/conversations/{x}/assign", json={"agent_id": bob["id"]})
    _inbound(desk, channel, "x2", thread="x")
    desk.ok("POST", f"/conversations/{x}/messages", json={"text": "Bob's answer"})
    assert desk.api("POST", f"/conversations/{x}/typing", token=bob["token"]).status_code == 204
    refused = desk.api("POST", f"/conversations/{x}/typing", token=ann["token"])
    assert refused.status_code == 404 and refused.json() == {"detail": "no such conversation"}
    desk.ok("PUT", f"/agents/{ann['id']}/presence", json={"status": "away"})  # seen by all: the end mark
    ann_got = watching_ann.events_until(_has("agent.presence", agent_id=ann["id"]))
    bob_got = watching_bob.events_until(_has("agent.presence", agent_id=ann["id"]))
    assert not any(d and d.get("conversation_id") == x for _, d in ann_got), ann_got
    assert _has("message.created", conversation_id=x, direction="out")(bob_got)
    assert _has("conversation.updated", conversation_id=x, assignee_id=bob["id"])(bob_got)
    assert _has("message.created", conversation_id=x, direction="in")(bob_got)
    assert _has("agent.typing", conversation_id=x, agent_id=bob["id"])(bob_got)
    desk.ok("PATCH", f"/conversations/{y}", json={"priority": 2})  # the queue: Ann sees it
    desk.ok("PUT", f"/agents/{ann['id']}/presence", json={"status": "offline"})
    assert _has("conversation.updated", conversation_id=y, priority=2)(
        watching_ann.events_until(_has("agent.presence", presence="offline")))


def test_a_client_past_the_pruned_horizon_is_told_to_reload(desk: Running) -> None:
    agent = desk.agent("Ann", online=False)
    for presence in ("online", "away", "online"):
        desk.ok("PUT", f"/agents/{agent['id']}/presence", json={"status": presence})
    first = _stored_ids(desk, 0)[0]
    with desk.engine.begin() as conn:
        conn.execute(update(events.events).values(created_at=utcnow() - timedelta(hours=100)))
    events.prune(desk.engine, 72)  # (or the sweep did, meanwhile)
    newest = events.head(desk.engine)
    assert events.horizon(desk.engine) == newest > first
    stale = Subscriber(desk, query=f"?after={first}")
    [(sequence, data)] = stale.events_until(lambda got: len(got) == 1)
    assert (sequence, data) == (newest, {"type": "reset"})
    desk.ok("PUT", f"/agents/{agent['id']}/presence", json={"status": "offline"})
    [(later, news)] = stale.events_until(lambda got: len(got) == 1)
    assert later > newest and news is not None and news["presence"] == "offline"
    stale.close()
    ahead = Subscriber(desk, query=f"?after={newest + 1000}")  # a number this stream never gave
    assert ahead.events_until(lambda got: len(got) == 1)[0][1] == {"type": "reset"}
    ahead.close()


@pytest.mark.parametrize("backend", ["sqlite"])  # above the database
def test_pings_and_refusals(backend: str, database_url: str, tmp_path: Path) -> None:
    with running_omnidesk(backend, database_url, tmp_path, OMNIDESK_EVENTS_PING="0.5") as desk:
        try:
            _pings_and_refusals(desk)
        finally:
            _close_streams()


def _pings_and_refusals(desk: Running) -> None:
    quiet = Subscriber(desk)
    deadline = time.monotonic() + 5
    comments = []
    while "ping" not in comments and time.monotonic() < deadline:
        kind, value = quiet.received.get(timeout=5)
        if kind == "comment":
            comments.append(value)
    assert "ping" in comments
    quiet.close()
    # A deactivated agent's stream ends at the next ping's check.
    agent = desk.agent("Ann", online=False)
    watching = Subscriber(desk, agent["token"])
    desk.ok("PATCH", f"/agents/{agent['id']}", json={"active": False})
    deadline = time.monotonic() + 5
    while (kind := watching.received.get(timeout=5)[0]) != "closed":
        assert time.monotonic() < deadline, "the stream went on"
    assert kind == "closed"
    assert desk.http.get("/api/v1/events").status_code == 401
    bad = desk.http.get("/api/v1/events", headers={"Authorization": f"Bearer {desk.admin_token}",
                                                   "Last-Event-ID": "abc"})
    assert bad.status_code == 422 and "Last-Event-ID" in bad.json()["detail"]
    assert desk.api("GET", "/events?after=-1").status_code == 422


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_write_from_another_process_wakes_the_stream(desk: Running) -> None:
    agent = desk.agent("Ann", online=False)
    live = Subscriber(desk)
    live.events_until(lambda got: len(got) == 1)  # the opening id line
    time.sleep(0.5)  # the web process is listening
    script = ("import sys, time; from store.db import get_engine; from store.agents import set_presence; "
              "set_presence(get_engine(), int(sys.argv[1]), 'away'); print(time.time(), flush=True); time.sleep(2)")
    env = {**os.environ, "OMNIDESK_DATABASE_URL": desk.database_url, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen([sys.executable, "-c", script, str(agent["id"])], stdout=subprocess.PIPE, env=env,
                              text=True)
    try:
        written = float(writer.stdout.readline())  # type: ignore[union-attr]
        live.events_until(_has("agent.presence", agent_id=agent["id"], presence="away"), timeout=10)
        assert time.time() - written < 1.5, "the wake-up came by the 30 s poll, not NOTIFY"
    finally:
        writer.wait(10)
        live.close()


def test_a_stream_behind_where_the_shared_reader_starts_is_woken(store_engine, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The first stream of a process starts the shared reader, at the head of the table as it is
    when the reader starts. An event written between the stream's own place and that start is
    behind the reader: no later read of the reader rings for it, so the stream is rung when the
    reader starts, and reads it itself (before: it waited for the next event or poll, 30 s here)."""
    import asyncio

    from store import events as event_store
    from web.events import Hub

    monkeypatch.setenv("OMNIDESK_EVENTS_POLL", "30")
    support.reset_caches()
    engine = store_engine

    async def scenario() -> bool:
        hub = Hub()
        bell = hub.subscribe()  # the shared reader's task is made, not run yet
        with engine.begin() as conn:  # meanwhile, a change (as another process makes it)
            event_store.append(conn, [event_store.event("agent.presence", agent_id=1, presence="away")])
        try:
            async with asyncio.timeout(5):
                await bell.wait()
            return True
        except TimeoutError:
            return False
        finally:
            hub.unsubscribe(bell)

    assert asyncio.run(scenario())


def test_an_agents_streams_share_one_read_of_the_agent(store_engine, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Each stream checks at its pings that its agent is still active (and their role and teams):
    in a web process one read of the agent serves all of the agent's streams for half a ping (ten
    tabs, ten streams: one read), a read older than that is made again, and an ``agent.updated``
    the process has read makes the next check read at once."""
    import asyncio

    from sqlalchemy import event as sa_event

    from store import agents as agent_store
    from store.db import get_engine
    from store.sql import agents as agents_table
    from web.events import Hub

    monkeypatch.setenv("OMNIDESK_EVENTS_POLL", "0.2")
    support.reset_caches()
    engine = get_engine()  # the engine the hub reads with (store_engine's is dropped with the caches)
    agent_id, _ = agent_store.create_agent(engine, name="Ann", email="ann@example.com", team_ids=["Returns"])
    reads: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM agents" in statement:
            reads.append(statement)

    sa_event.listen(engine, "before_cursor_execute", count)

    async def scenario() -> None:
        hub = Hub()
        bell = hub.subscribe()
        try:
            async with asyncio.timeout(5):  # the shared reader started (its place: before the update below)
                while hub.base is None:
                    await asyncio.sleep(0.01)
            seen = [await hub.viewer_now(agent_id, within=10) for _ in range(10)]
            assert len(reads) == 1
            assert seen[0] is not None and seen[0].team_ids and not seen[0].admin
            assert all(one == seen[0] for one in seen)
            with engine.begin() as conn:  # deactivated behind the process's back: no event
                conn.execute(update(agents_table).where(agents_table.c.id == agent_id).values(active=False))
            assert await hub.viewer_now(agent_id, within=10) == seen[0]  # the shared read stands ...
            assert await hub.viewer_now(agent_id, within=0) is None  # ... until it is as old as asked
            assert len(reads) == 2
            agent_store.update_agent(engine, agent_id, {"active": True, "role": "admin"})  # agent.updated
            del reads[:]  # (the update's own read)
            async with asyncio.timeout(5):
                while not hub.changed_since(agent_id, 0):
                    await asyncio.sleep(0.02)
            now = await hub.viewer_now(agent_id, within=10)
            assert now is not None and now.admin and len(reads) == 1
        finally:
            hub.unsubscribe(bell)

    try:
        asyncio.run(scenario())
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)


def test_a_client_that_stops_reading_holds_up_no_other_stream_and_misses_nothing(desk: Running) -> None:
    """The process writes its live streams from one task (``Hub._push``); a write to a client
    that has stopped reading waits on a task of its own. So a stalled client (a laptop lid
    closed) holds up no other stream, and when it reads again it gets every event after its
    place, once, in order (what piled up meanwhile: the rest of the pending write, then the
    stream's own catch-up)."""
    agent = desk.agent("Ann", online=False)
    host, port = desk.url.removeprefix("http://").split(":")
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the server's writes pause soon
    slow.connect((host, int(port)))
    slow.sendall(f"GET /api/v1/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {desk.admin_token}\r\n"
                 "Accept: text/event-stream\r\n\r\n".encode())
    raw = b""
    while b"\r\n\r\n" not in raw or _dechunk(raw.split(b"\r\n\r\n", 1)[1])[0] == b"":
        raw += slow.recv(4096)  # the answer's head and the stream's opening (its place)
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
    start = int(re.search(rb"id: (\d+)", _dechunk(body)[0]).group(1))  # type: ignore[union-attr]
    fast = Subscriber(desk)
    fast.events_until(lambda got: len(got) == 1)  # its opening
    pad = "x" * 400
    for batch in range(100):  # 5 MB of events (past what the kernel buffers) while the slow client reads nothing
        with desk.engine.begin() as conn:
            events.append(conn, [events.event("agent.presence", agent_id=agent["id"], presence="away", n=n, pad=pad)
                                 for n in range(batch * 100, batch * 100 + 100)])
    written = _stored_ids(desk, start)
    # The other stream has them all, promptly: nothing waited for the stalled client.
    got = fast.events_until(lambda got: any(i == written[-1] for i, _ in got), timeout=20)
    assert [i for i, _ in got if i is not None and i > start] == written
    # The stalled client reads again: every event after its place, once, in order.
    slow.settimeout(20)
    text, body = _dechunk(body)
    while not text.endswith(b"\n\n") or int(re.findall(rb"id: (\d+)\n", text[-2000:])[-1]) < written[-1]:
        chunk = slow.recv(1 << 20)
        assert chunk, "the stream ended"
        more, body = _dechunk(body + chunk)
        text += more
    slow.close()
    assert [int(i) for i in re.findall(rb"^id: (\d+)\ndata: ", text, re.MULTILINE) if int(i) > start] == written


def _dechunk(body: bytes) -> tuple[bytes, bytes]:
    """HTTP/1.1 chunked ``body``: the data of its whole chunks, and what is left of a partial one."""
    data, at = [], 0
    while (end := body.find(b"\r\n", at)) >= 0:
        size = int(body[at:end], 16)
        if len(body) < end + 2 + size + 2:
            break
        data.append(body[end + 2:end + 2 + size])
        at = end + 2 + size + 2
    return b"".join(data), body[at:]
