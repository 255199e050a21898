"""Send pacing shared by every worker process: a scheduler of slots per key.

A connector says how fast it may send (``Connector.send_limits``: a ``SendLimit`` per sender,
bot or chat). Before each send the deliver job asks for one slot that suits every limit of the
reply. Per key the pacer keeps the next free time; asking is, atomically over the reply's keys::

    slot = max(now, next_free of each key); wait = slot - now
    if wait <= horizon and no key would leave more than SPARE of its slots unused before slot:
        next_free = slot + interval (each key)            # the slot is the reply's
    else:
        nothing is reserved; wait = the reply's place in the key's queue (see below)

so sends keep an even spacing whoever sends them, and a burst queues up behind the first instead
of hitting the provider's limit and its 429s. ``interval`` is ``1 / per_second`` stretched by
MARGIN: the time from the slot to the request reaching the provider varies by milliseconds, and
without the margin that jitter could put one send too many into a provider's second.

Only near-term slots are reserved (within ``horizon``): the worker sleeps to its slot in the
thread that holds the reply, so the reservations outstanding are at most the sending threads', and
none is lost to a job the broker brings back late. A reply that would wait longer reserves nothing
and is rung again for about its place in the queue: each key also keeps the end of that queue
(``queue``: one QUEUE_STEP of an interval further for every reply sent away), so a burst of
replies comes back spread over the time their sends need, and asks again.

Just before it sends, the thread says so (:meth:`Pacer.sending`), and once the provider has
answered (or the request failed) it says that too (:meth:`Pacer.sent`). The provider counts a
send when it arrives, some time between its start and its answer; a loaded machine can stretch
that by hundreds of milliseconds, so sends that started on their slots arrive bunched. Per key
the pacer therefore keeps, for each of the last sends, the latest it can have arrived: its answer's
time once answered, else its start plus a window (a send in flight, or one whose worker died). A
send starts only when fewer than ``burst(limit)`` of these fall within the ``window(limit)`` before
it (30 in 1 s at 30/s, one in 1 s at 1/s). Then no window of the provider's holds more than its
burst of arrivals, however late each arrived within its request: the send that starts last in
such a window saw every other one counted. A thread that woke late still sends in its slot (no
slot is lost, and the threads holding the next slots do not wait for it) unless the window says
no; then it waits until it would not. Nor do two sends start closer than CATCH_UP of
``1 / per_second``: the sends held up by a stall catch up at twice the rate at most, not all at
once. The key's next free time moves past the send too, so the slots reserved from then on are
spaced from the actual sends.

Backends: on Redis one Lua script per ask (the clock is Redis's own, the keys live under the
broker's namespace and expire once their slot has passed); without Redis (the embedded default)
a dict under a lock, which paces the one process that sends. A RabbitMQ deployment paces through
``OMNIDESK_REDIS_URL`` when it is set, else per process.

Connectors never import this module: they only declare their limits.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from connectors.base import SendLimit

log = logging.getLogger("omnidesk.pacing")

MARGIN = 1.05  # slots 5% further apart than the limit allows (see the module docstring)
# The window of arrivals a send checks, a little longer than the provider's second: two machines'
# clocks may run apart by an NTP slew (0.05%), and a timer's granularity is a millisecond or so.
WINDOW_MARGIN = 1.01
KEEP_MS = 60_000  # a key lives this long past its next free slot
HORIZON = 2.0  # seconds: a slot further away than this is not reserved
SPARE = 2.0  # slots of a key one reservation may leave unused (a reply bound by another key)
QUEUE_STEP = 0.8  # replies sent away are queued this fraction of an interval apart (some come late)
CATCH_UP = 0.5  # sends after a late one start at least this fraction of 1 / per_second apart


def interval(limit: SendLimit) -> float:
    """Seconds between two slots of ``limit``."""
    return MARGIN / limit.per_second


def burst(limit: SendLimit) -> int:
    """Sends of ``limit`` that may start within one window (a provider's "N a second")."""
    return max(1, math.floor(limit.per_second + 1e-9))


def window(limit: SendLimit) -> float:
    """Seconds of the window that holds at most ``burst(limit)`` arrivals."""
    return WINDOW_MARGIN * burst(limit) / limit.per_second


@dataclass(frozen=True)
class Start:
    """The answer to :meth:`Pacer.sending`: send after ``wait`` seconds (0: now); pass ``token``
    to :meth:`Pacer.sent` once the provider answered."""

    wait: float
    token: str


@dataclass(frozen=True)
class Slot:
    """The answer to an ask: ``taken``, the reply's slot is ``wait`` seconds away (0: now);
    else nothing is reserved and the reply's place in the queue is ``wait`` seconds away."""

    wait: float
    taken: bool


class Pacer(Protocol):
    def ask(self, limits: Sequence[SendLimit], horizon: float = HORIZON) -> Slot:
        """Ask for one slot of every limit (see the module docstring)."""

    def sending(self, limits: Sequence[SendLimit]) -> Start:
        """Claim the start of a send of ``limits``: the seconds to wait first (0: send now) so no
        window of a key holds more than its burst of arrivals; later slots move past it."""

    def sent(self, limits: Sequence[SendLimit], token: str) -> None:
        """The send ``token`` of ``limits`` was answered: it arrived by now."""


def decide(now: float, frees: Sequence[float], queues: Sequence[float], steps: Sequence[float],
           horizon: float) -> tuple[Slot, list[float], list[float]]:
    """The one rule, on one key set's state: (the answer, new next-free times, new queue ends).
    TAKE_SCRIPT is this function in Lua (a test runs both on the same cases)."""
    earliest = [max(now, f) for f in frees]
    slot = max(earliest, default=now)
    taken = slot - now <= horizon and all(slot - e <= SPARE * s for e, s in zip(earliest, steps, strict=True))
    if taken:
        new_frees = [slot + s for s in steps]
        return Slot(slot - now, True), new_frees, [max(q, f) for q, f in zip(queues, new_frees, strict=True)]
    places = [max(q, e) for q, e in zip(queues, earliest, strict=True)]
    return (Slot(max(places) - now, False), list(frees),
            [p + QUEUE_STEP * s for p, s in zip(places, steps, strict=True)])


class LocalPacer:
    """Slots kept in this process (the embedded default, no Redis)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, float]] = {}  # key: (next free, queue end)
        self._last: dict[str, float] = {}  # key: the last send's start
        self._sends: dict[str, dict[str, float]] = {}  # key: token -> the latest its send arrived
        self._tokens = itertools.count(1)

    def ask(self, limits: Sequence[SendLimit], horizon: float = HORIZON) -> Slot:
        limits = [limit for limit in limits if limit.per_second > 0]
        with self._lock:
            now = time.monotonic()
            state = [self._state.get(limit.key, (0.0, 0.0)) for limit in limits]
            slot, frees, queues = decide(now, [s[0] for s in state], [s[1] for s in state],
                                         [interval(limit) for limit in limits], horizon)
            for limit, free, queue in zip(limits, frees, queues, strict=True):
                self._state[limit.key] = (free, queue)
            if len(self._state) > 10_000:  # forget keys whose slots are long past
                self._state = {k: v for k, v in self._state.items() if max(v) > now}
                self._last = {k: v for k, v in self._last.items() if k in self._state}
                self._sends = {k: v for k, v in self._sends.items() if k in self._state}
            return slot

    def sending(self, limits: Sequence[SendLimit]) -> Start:
        limits = [limit for limit in limits if limit.per_second > 0]
        with self._lock:
            now = time.monotonic()
            token = str(next(self._tokens))
            at = now
            for limit in limits:
                sends = self._sends.setdefault(limit.key, {})
                for old in [t for t, arrived in sends.items() if arrived <= now - window(limit)]:
                    del sends[old]  # out of every window from now on
                if limit.key in self._last:
                    at = max(at, self._last[limit.key] + CATCH_UP / limit.per_second)
                latest = heapq.nlargest(burst(limit), sends.values())
                if len(latest) == burst(limit):
                    at = max(at, latest[-1] + window(limit))
            for limit in limits:
                self._last[limit.key] = at
                self._sends[limit.key][token] = at + window(limit)  # in flight: arrived by then, at most
                free, queue = self._state.get(limit.key, (0.0, 0.0))
                self._state[limit.key] = (max(free, at + interval(limit)), queue)
            return Start(at - now, token)

    def sent(self, limits: Sequence[SendLimit], token: str) -> None:
        with self._lock:
            now = time.monotonic()
            for limit in limits:
                sends = self._sends.get(limit.key, {})
                if token in sends:
                    sends[token] = now

    def next_free(self, key: str) -> float:
        """Seconds from now to the key's next free time (0 when free now)."""
        with self._lock:
            return max(0.0, self._state.get(key, (0.0, 0.0))[0] - time.monotonic())

    def take(self, limit: SendLimit) -> float:
        """Reserve the next slot of one limit however far; the wait (tests, tools)."""
        return self.ask([limit], math.inf).wait


# KEYS: one hash per limit (fields free, queue); ARGV[1]: horizon (s), ARGV[2]: SPARE,
# ARGV[3]: QUEUE_STEP, ARGV[4]: how long to keep a key past its times (ms), ARGV[5..]: intervals.
# Returns {taken (1/0), wait}; the wait as a string (a Lua number would come back cut to an integer).
# The same rule as decide().
TAKE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local horizon, spare, qstep, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local earliest, queue, step = {}, {}, {}
local slot = now
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'free', 'queue')
  earliest[i] = math.max(now, tonumber(v[1] or '0'))
  queue[i] = tonumber(v[2] or '0')
  step[i] = tonumber(ARGV[4 + i])
  slot = math.max(slot, earliest[i])
end
local taken = slot - now <= horizon
for i = 1, #KEYS do
  if slot - earliest[i] > spare * step[i] then taken = false end
end
local wait = slot - now
if not taken then
  wait = 0
  for i = 1, #KEYS do wait = math.max(wait, math.max(queue[i], earliest[i]) - now) end
end
for i = 1, #KEYS do
  local q, last
  if taken then
    q = math.max(queue[i], slot + step[i])
    last = q
    redis.call('HSET', KEYS[i], 'free', string.format('%.6f', slot + step[i]), 'queue', string.format('%.6f', q))
  else
    q = math.max(queue[i], earliest[i]) + qstep * step[i]
    last = math.max(q, earliest[i])
    redis.call('HSET', KEYS[i], 'queue', string.format('%.6f', q))
  end
  redis.call('PEXPIRE', KEYS[i], math.ceil((last - now) * 1000) + keep)
end
return {taken and 1 or 0, string.format('%.6f', wait)}
"""

# KEYS[1..n]: one hash per limit (fields free, last: the last start), KEYS[n+1..2n]: one sorted set
# per limit (send token -> the latest it arrived); ARGV[1]: keep (ms), ARGV[2]: the send's token,
# then per limit its burst, its window (s), its interval (s) and the least gap between two starts (s).
# The send starts at the first time no key's window would hold more than its burst; returns at - now.
SENDING_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = #KEYS / 2
local keep, token = tonumber(ARGV[1]), ARGV[2]
local at = now
for i = 1, n do
  local count, win = tonumber(ARGV[3 + 4 * (i - 1)]), tonumber(ARGV[4 + 4 * (i - 1)])
  local last = redis.call('HGET', KEYS[i], 'last')
  if last then at = math.max(at, tonumber(last) + tonumber(ARGV[6 + 4 * (i - 1)])) end
  redis.call('ZREMRANGEBYSCORE', KEYS[n + i], '-inf', string.format('%.6f', now - win))
  local nth = redis.call('ZREVRANGE', KEYS[n + i], count - 1, count - 1, 'WITHSCORES')
  if nth[2] then at = math.max(at, tonumber(nth[2]) + win) end
end
for i = 1, n do
  local win = tonumber(ARGV[4 + 4 * (i - 1)])
  local free = math.max(at + tonumber(ARGV[5 + 4 * (i - 1)]), tonumber(redis.call('HGET', KEYS[i], 'free') or '0'))
  local ttl = math.ceil((math.max(free, at + win) - now) * 1000) + keep
  redis.call('HSET', KEYS[i], 'free', string.format('%.6f', free), 'last', string.format('%.6f', at))
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
  redis.call('ZADD', KEYS[n + i], string.format('%.6f', at + win), token)
  redis.call('PEXPIRE', KEYS[n + i], ttl)
end
return string.format('%.6f', at - now)
"""

# KEYS: the sorted sets of SENDING_SCRIPT; ARGV[1]: the send's token. It arrived by now.
SENT_SCRIPT = """
local t = redis.call('TIME')
local now = string.format('%.6f', tonumber(t[1]) + tonumber(t[2]) / 1000000)
for i = 1, #KEYS do redis.call('ZADD', KEYS[i], 'XX', now, ARGV[1]) end
return 1
"""


class RedisPacer:
    """Slots kept in Redis, shared by every process that uses the same Redis and namespace."""

    def __init__(self, client: Any, namespace: str) -> None:
        self.prefix = f"{namespace}:pace:"
        self._client = client
        self._ask = client.register_script(TAKE_SCRIPT)
        self._sending = client.register_script(SENDING_SCRIPT)
        self._sent = client.register_script(SENT_SCRIPT)

    def ask(self, limits: Sequence[SendLimit], horizon: float = HORIZON) -> Slot:
        limits = [limit for limit in limits if limit.per_second > 0]
        if not limits:
            return Slot(0.0, True)
        taken, wait = self._ask(keys=[self.prefix + limit.key for limit in limits],
                                args=[repr(horizon), repr(SPARE), repr(QUEUE_STEP), KEEP_MS,
                                      *(repr(interval(limit)) for limit in limits)])
        return Slot(float(wait), bool(int(taken)))

    def sending(self, limits: Sequence[SendLimit]) -> Start:
        limits = [limit for limit in limits if limit.per_second > 0]
        token = secrets.token_hex(8)
        if not limits:
            return Start(0.0, token)
        keys = [self.prefix + limit.key for limit in limits]
        args: list[Any] = [KEEP_MS, token]
        for limit in limits:
            args += [burst(limit), repr(window(limit)), repr(interval(limit)), repr(CATCH_UP / limit.per_second)]
        return Start(float(self._sending(keys=[*keys, *(f"{k}:sends" for k in keys)], args=args)), token)

    def sent(self, limits: Sequence[SendLimit], token: str) -> None:
        keys = [f"{self.prefix}{limit.key}:sends" for limit in limits if limit.per_second > 0]
        if keys:
            self._sent(keys=keys, args=[token])

    def next_free(self, key: str) -> float:
        """Seconds from now to the key's next free time (0 when free now)."""
        free = self._client.hget(self.prefix + key, "free")
        seconds, micros = self._client.time()
        return max(0.0, float(free or 0) - (seconds + micros / 1e6))

    def take(self, limit: SendLimit) -> float:
        """Reserve the next slot of one limit however far; the wait (tests, tools)."""
        return self.ask([limit], 1e9).wait


_pacer: Pacer = LocalPacer()


def configure(broker: Any, *, namespace: str, redis_url: str | None = None) -> Pacer:
    """Choose the pacer for this process's ``broker``: its Redis when it is a Redis broker, else
    Redis at ``redis_url`` when given, else this process alone."""
    global _pacer
    client = getattr(broker, "client", None) if type(broker).__name__ == "RedisBroker" else None
    if client is None and redis_url:
        import redis

        client = redis.Redis.from_url(redis_url)
    _pacer = RedisPacer(client, namespace) if client is not None else LocalPacer()
    return _pacer


def current() -> Pacer:
    return _pacer


def ask(limits: Iterable[SendLimit], pacer: Pacer | None = None, horizon: float = HORIZON) -> Slot:
    """Ask the pacer of this process (or ``pacer``) for one slot of every limit."""
    return (pacer or _pacer).ask(list(limits), horizon)
