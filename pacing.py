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

Just before it sends, the thread says so (:meth:`Pacer.sending`). Per key the pacer keeps the
starts of the last sends, and no window of ``window(limit)`` seconds holds more than ``burst(limit)``
starts (10 in 1.05 s at 10/s, one in 1.05 s at 1/s): a thread that woke late still sends in its
slot (no slot is lost, and the threads holding the next slots do not wait for it), unless that
would put one send too many into a window the provider counts; then it waits until it would not.
Nor do two sends start closer than CATCH_UP of ``1 / per_second``: the sends held up by a stall
catch up at twice the rate at most, not all at once (a provider's bucket holds a few, not a burst).
The key's next free time moves past the send too, so the slots reserved from then on are spaced
from the actual sends.

Backends: on Redis one Lua script per ask (the clock is Redis's own, the keys live under the
broker's namespace and expire once their slot has passed); without Redis (the embedded default)
a dict under a lock, which paces the one process that sends. A RabbitMQ deployment paces through
``OMNIDESK_REDIS_URL`` when it is set, else per process.

Connectors never import this module: they only declare their limits.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from connectors.base import SendLimit

log = logging.getLogger("omnidesk.pacing")

MARGIN = 1.05  # slots 5% further apart than the limit allows (see the module docstring)
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
    """Seconds of the window that holds at most ``burst(limit)`` starts."""
    return burst(limit) * interval(limit)


@dataclass(frozen=True)
class Slot:
    """The answer to an ask: ``taken``, the reply's slot is ``wait`` seconds away (0: now);
    else nothing is reserved and the reply's place in the queue is ``wait`` seconds away."""

    wait: float
    taken: bool


class Pacer(Protocol):
    def ask(self, limits: Sequence[SendLimit], horizon: float = HORIZON) -> Slot:
        """Ask for one slot of every limit (see the module docstring)."""

    def sending(self, limits: Sequence[SendLimit]) -> float:
        """Claim the start of a send of ``limits``: the seconds to wait first (0: send now) so no
        window of a key holds more than its burst of starts; later slots move past it."""


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
        self._starts: dict[str, collections.deque[float]] = {}  # key: the last sends' starts

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
                self._starts = {k: v for k, v in self._starts.items() if k in self._state}
            return slot

    def sending(self, limits: Sequence[SendLimit]) -> float:
        limits = [limit for limit in limits if limit.per_second > 0]
        with self._lock:
            now = time.monotonic()
            starts = [self._starts.setdefault(limit.key, collections.deque(maxlen=burst(limit))) for limit in limits]
            at = now
            for limit, recent in zip(limits, starts, strict=True):
                if recent:
                    at = max(at, recent[-1] + CATCH_UP / limit.per_second)
                if len(recent) == burst(limit):
                    at = max(at, recent[0] + window(limit))
            for limit, recent in zip(limits, starts, strict=True):
                recent.append(at)
                free, queue = self._state.get(limit.key, (0.0, 0.0))
                self._state[limit.key] = (max(free, at + interval(limit)), queue)
            return at - now

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

# KEYS[1..n]: one hash per limit (field free), KEYS[n+1..2n]: one list per limit (the last starts,
# newest first); ARGV[1]: keep (ms), then per limit its burst, its window (s), its interval (s) and
# the least gap between two starts (s).
# The send starts at the first time no key's window would hold more than its burst; returns at - now.
SENDING_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = #KEYS / 2
local keep = tonumber(ARGV[1])
local at = now
for i = 1, n do
  local count = tonumber(ARGV[2 + 4 * (i - 1)])
  local newest = redis.call('LINDEX', KEYS[n + i], 0)
  if newest then at = math.max(at, tonumber(newest) + tonumber(ARGV[5 + 4 * (i - 1)])) end
  local oldest = redis.call('LINDEX', KEYS[n + i], count - 1)
  if oldest then at = math.max(at, tonumber(oldest) + tonumber(ARGV[3 + 4 * (i - 1)])) end
end
for i = 1, n do
  local count = tonumber(ARGV[2 + 4 * (i - 1)])
  local free = math.max(at + tonumber(ARGV[4 + 4 * (i - 1)]), tonumber(redis.call('HGET', KEYS[i], 'free') or '0'))
  local ttl = math.ceil((free - now) * 1000) + keep
  redis.call('HSET', KEYS[i], 'free', string.format('%.6f', free))
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
  redis.call('LPUSH', KEYS[n + i], string.format('%.6f', at))
  redis.call('LTRIM', KEYS[n + i], 0, count - 1)
  redis.call('PEXPIRE', KEYS[n + i], ttl)
end
return string.format('%.6f', at - now)
"""


class RedisPacer:
    """Slots kept in Redis, shared by every process that uses the same Redis and namespace."""

    def __init__(self, client: Any, namespace: str) -> None:
        self.prefix = f"{namespace}:pace:"
        self._client = client
        self._ask = client.register_script(TAKE_SCRIPT)
        self._sending = client.register_script(SENDING_SCRIPT)

    def ask(self, limits: Sequence[SendLimit], horizon: float = HORIZON) -> Slot:
        limits = [limit for limit in limits if limit.per_second > 0]
        if not limits:
            return Slot(0.0, True)
        taken, wait = self._ask(keys=[self.prefix + limit.key for limit in limits],
                                args=[repr(horizon), repr(SPARE), repr(QUEUE_STEP), KEEP_MS,
                                      *(repr(interval(limit)) for limit in limits)])
        return Slot(float(wait), bool(int(taken)))

    def sending(self, limits: Sequence[SendLimit]) -> float:
        limits = [limit for limit in limits if limit.per_second > 0]
        if not limits:
            return 0.0
        keys = [self.prefix + limit.key for limit in limits]
        args: list[Any] = [KEEP_MS]
        for limit in limits:
            args += [burst(limit), repr(window(limit)), repr(interval(limit)), repr(CATCH_UP / limit.per_second)]
        return float(self._sending(keys=[*keys, *(f"{k}:starts" for k in keys)], args=args))

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
