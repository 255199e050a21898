"""What the benchmarks share: scratch PostgreSQL databases, omnidesk's settings pointed at them,
omnidesk's processes started as deployed and stopped again, where the CPU went, percentiles, and
the output (a table for a person, then one line of JSON for a script)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

CHECKOUT = Path(__file__).resolve().parents[1]  # bench/ is not installed: its children import it from here
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


@contextlib.contextmanager
def scratch_database(admin_url: str = DEFAULT_PG, *, keep: bool = False) -> Iterator[str]:
    """A new, empty PostgreSQL database for one run, dropped afterwards (even on Ctrl-C) unless
    ``keep``. Yields its URL."""
    import psycopg

    name = f"omnidesk_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def scratch_store(channel_name: str = "bench") -> Iterator[tuple[Any, int]]:
    """The store alone, in this process, on a scratch PostgreSQL database (migrated, dropped
    afterwards) with one API channel. Yields the engine and the channel's id."""
    with scratch_database() as url:
        use_database(url)
        from store.channels import create_channel
        from store.db import get_engine, upgrade

        upgrade()
        engine = get_engine()
        yield engine, create_channel(engine, "api", channel_name,
                                     {"secret": "s" * 32, "callback_url": "http://127.0.0.1:9/"})


def use_database(url: str, **env: str) -> dict[str, str]:
    """Point this process's omnidesk at ``url`` (settings and engine caches reset). Returns the
    environment for child processes, with the same secret key (channel secrets decrypt there)."""
    from store.db import get_engine
    from store.settings import get_settings

    values = {"OMNIDESK_DATABASE_URL": url, "OMNIDESK_SECRET_KEY": os.environ.get("OMNIDESK_SECRET_KEY")
              or secrets.token_urlsafe(32), **env}
    os.environ.update(values)
    get_settings.cache_clear()
    get_engine.cache_clear()
    return {**os.environ, **values}


def flush_redis(redis_url: str, namespace: str) -> int:
    """Delete every key of one Redis namespace (a run's broker queues)."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=5)
    keys = list(client.scan_iter(f"{namespace}:*"))
    if keys:
        client.delete(*keys)
    return len(keys)


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` different free TCP ports on 127.0.0.1."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))]


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C, so ``finally`` blocks stop the processes and drop the database."""
    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Processes:
    """Child processes, each in a process group of its own (uvicorn's and dramatiq's children go
    with it), output to a log file shown when something goes wrong."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(CHECKOUT), env.get("PYTHONPATH")]))}
        self.logs = Path(tempfile.mkdtemp(prefix="omnidesk-bench-"))
        self.keep_logs = False  # once shown, kept for a closer look
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen([sys.executable, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.started.append((name, proc))
        return proc

    def omnidesk(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """``omnidesk <args>``, the console script's code run by this interpreter."""
        return self.start(name, "-m", "cli", *args)

    def check_alive(self) -> None:
        for name, proc in self.started:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def show_logs(self) -> None:
        self.keep_logs = True
        for name, _ in self.started:
            text = self.tail(name)
            if text.strip():
                print(f"--- {name} ({self.logs / name}.log)\n{text}", file=sys.stderr)

    def stop(self) -> None:
        """SIGTERM to every group, then SIGKILL to what is left after 10 s."""
        for _, proc in self.started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, proc in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # also the group's orphans
            proc.wait()
        self.started.clear()
        if not self.keep_logs:
            shutil.rmtree(self.logs, ignore_errors=True)


def wait_http(url: str, timeout: float, procs: Processes | None = None) -> None:
    """Wait until ``url`` answers 200 (a child that dies meanwhile fails at once)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if procs is not None:
            procs.check_alive()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:g} s")


class CpuMeter:
    """CPU seconds spent by groups of processes (by process group id, or by name) between two
    readings of /proc, beside the machine's total. Linux only; elsewhere every reading is 0."""

    def __init__(self, groups: dict[str, set[int]], names: dict[str, str] | None = None) -> None:
        self.groups = groups  # label -> process group ids
        self.names = names or {}  # label -> command name (e.g. "postgres")
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def read(self) -> dict[str, float]:
        used = dict.fromkeys([*self.groups, *self.names, "this process"], 0.0)
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            comm = text[text.index("(") + 1:text.rindex(")")]
            fields = text[text.rindex(")") + 2:].split()
            # utime + stime, and cutime + cstime: children that exited (short-lived PostgreSQL
            # backends, a pool's discarded connections) are counted in their parent.
            pgid, seconds = int(fields[2]), sum(int(v) for v in fields[11:15]) / self.tick
            if int(stat.parent.name) == os.getpid():
                used["this process"] += seconds
            for label, pgids in self.groups.items():
                if pgid in pgids:
                    used[label] += seconds
            for label, name in self.names.items():
                if comm == name:
                    used[label] += seconds
        with contextlib.suppress(OSError):
            cpu = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
            # user nice system idle iowait irq softirq steal (guest time is counted in user already)
            used["machine busy"] = sum(int(cpu[i]) for i in (0, 1, 2, 5, 6)) / self.tick
            used["machine idle"] = (int(cpu[3]) + int(cpu[4])) / self.tick
        return used

    @staticmethod
    def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        """CPU seconds per label between two readings; "other" is what none of them used."""
        spent = {k: max(0.0, after.get(k, 0.0) - v) for k, v in before.items()}
        ours = sum(v for k, v in spent.items() if not k.startswith("machine"))
        spent["other"] = max(0.0, spent.get("machine busy", 0.0) - ours)
        return spent


def print_table(title: str, rows: Sequence[Sequence[Any]]) -> None:
    """Rows of cells as aligned columns under a title (the first row is the header)."""
    cells = [[f"{c:,.1f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    print(title)
    for n, row in enumerate(cells):
        line = (c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        print("  " + "  ".join(line))
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def emit(result: dict[str, Any]) -> None:
    """The benchmark's last line: one JSON object of its figures."""
    print(json.dumps(result, ensure_ascii=False), flush=True)


# -- an HTTP load generator ----------------------------------------------------------------------
# It shares the machine with what it measures, so it must cost little: requests are prepared bytes,
# sent over keep-alive connections from one asyncio loop (uvloop when installed), with only the
# status line and the length read back: about 10 µs a request. (httpx's AsyncClient tops out near
# 500 requests/s on the 2-core machine: it would measure itself.)

def http_requests(path: str, bodies: Sequence[tuple[bytes, dict[str, str]]]) -> list[bytes]:
    """HTTP/1.1 POSTs of ``(body, headers)`` to ``path``, ready to send."""
    out = []
    for body, headers in bodies:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        out.append(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode()
                   + body)
    return out


_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


async def read_answer(reader: asyncio.StreamReader) -> int:
    """Read one response; returns its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    if b"\r\ntransfer-encoding: chunked" in head.lower():
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    elif found := _LENGTH.search(head):
        await reader.readexactly(int(found.group(1)))
    return int(head[9:12])


async def _send_all(ports: Sequence[int], requests: list[bytes], concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    pending = iter(requests)
    connections = min(concurrency, len(requests))
    streams = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", ports[n % len(ports)])
                                     for n in range(connections)))

    async def client(port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for request in pending:
            sent = time.perf_counter()
            try:
                writer.write(request)
                status = await read_answer(reader)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                status = 0  # no answer: an error; the next request goes on a new connection
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            latencies.append((time.perf_counter() - sent) * 1000)
            statuses[status] += 1
        writer.close()

    began, wall = time.perf_counter(), time.time()
    await asyncio.gather(*(client(ports[n % len(ports)], *stream) for n, stream in enumerate(streams)))
    seconds = time.perf_counter() - began
    return {"rate": len(requests) / seconds, "seconds": seconds, "began": wall, "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99), "statuses": dict(statuses), "latencies": latencies}


def http_load(ports: Sequence[int], requests: list[bytes], concurrency: int, *, ok: int = 202) -> dict[str, Any]:
    """Send every request, ``concurrency`` at a time, the connections split evenly between the
    servers at ``ports`` on 127.0.0.1 (a load balancer's job). Returns requests/s ("rate", from
    the first request sent to the last answer), "seconds", "began" (wall clock), answer-time
    "p50"/"p99" in ms, "statuses" (status -> count, 0 for no answer) and "errors" (answers other
    than ``ok``)."""
    if not requests:
        return {"rate": 0.0, "seconds": 0.0, "began": time.time(), "p50": 0.0, "p99": 0.0, "statuses": {},
                "errors": 0, "latencies": []}
    try:
        import uvloop

        loop_factory: Any = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(_send_all(ports, requests, concurrency))
    result["errors"] = sum(n for status, n in result["statuses"].items() if status != ok)
    return result


def http_load_apart(ports: Sequence[int], requests: list[bytes], concurrency: int, *, ok: int = 202) -> dict[str, Any]:
    """:func:`http_load` in a child process of its own: for a benchmark whose process also hosts a
    provider's stand-in, which must not wait for the load generator to stamp what reaches it
    (a real provider does not share a core's turn with our load)."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(1) as pool:
        return pool.apply(http_load, (ports, requests, concurrency), {"ok": ok})


def paced_posts(ports: Sequence[int], requests: Sequence[tuple[str, bytes]], rate: float, *,
                connections: int = 32) -> list[tuple[str, float]]:
    """Send ``(key, request)`` pairs at ``rate`` a second, on time whatever the answers take (up to
    ``connections`` in flight, split between the servers at ``ports``); returns each key with the
    wall-clock time its answer arrived. A request answered other than 2xx raises."""
    async def send_all() -> list[tuple[str, float]]:
        pool: asyncio.Queue[tuple[int, asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        for n in range(connections):
            port = ports[n % len(ports)]
            pool.put_nowait((port, *await asyncio.open_connection("127.0.0.1", port)))
        answered: list[tuple[str, float]] = []
        failed: list[int] = []

        async def one(key: str, request: bytes) -> None:
            port, reader, writer = await pool.get()
            writer.write(request)
            status = await read_answer(reader)
            answered.append((key, time.time()))
            if not 200 <= status < 300:
                failed.append(status)
            pool.put_nowait((port, reader, writer))

        began = time.perf_counter()
        tasks = []
        for n, (key, request) in enumerate(requests):
            wait = began + n / rate - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(one(key, request)))
        await asyncio.gather(*tasks)
        while not pool.empty():
            pool.get_nowait()[2].close()
        if failed:
            raise RuntimeError(f"paced posts: {len(failed)} answers other than 2xx, e.g. {failed[:5]}")
        return answered

    return asyncio.run(send_all())


class Readers:
    """Processes of ``bench.stream_readers``, each holding some event streams open and noting when
    each incoming message's ``message.created`` arrived on each."""

    def __init__(self, procs: Processes) -> None:
        self.procs = procs
        self.dir = Path(tempfile.mkdtemp(prefix="omnidesk-streams-"))
        self.started: list[tuple[subprocess.Popen[bytes], Path, Path]] = []

    def start(self, name: str, streams: list[tuple[str, int, str]]) -> subprocess.Popen[bytes]:
        """A process holding ``streams``: (key, port on 127.0.0.1, the raw HTTP request) each."""
        plan, out, ready = self.dir / f"{name}.json", self.dir / f"{name}.out", self.dir / f"{name}.ready"
        plan.write_text(json.dumps({"host": "127.0.0.1", "ready": str(ready), "streams": streams}))
        proc = self.procs.start(name, "-m", "bench.stream_readers", str(plan), str(out))
        self.started.append((proc, ready, out))
        return proc

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for _, ready, _ in self.started:
            while not ready.exists():
                self.procs.check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the streams were not all open within {timeout:g} s")
                time.sleep(0.1)
            if (text := ready.read_text()) != "ready":
                raise RuntimeError(f"a stream was refused: {text}")

    def finish(self) -> dict[str, list[tuple[int, float]]]:
        """Stop every reader; what each stream received."""
        self.procs.check_alive()
        for proc, _, _ in self.started:
            os.killpg(proc.pid, signal.SIGTERM)
        received: dict[str, list[tuple[int, float]]] = {}
        for proc, _, out in self.started:
            proc.wait(timeout=60)
            self.procs.started = [(name, p) for name, p in self.procs.started if p is not proc]
            for line in out.read_text().splitlines():
                key, *got = line.split(" ")
                received[key] = [(int(m), float(t)) for m, t in (g.split(":") for g in got if g)]
        shutil.rmtree(self.dir, ignore_errors=True)
        return received
