"""Send pacing shared by every worker process: a scheduler of slots per key.

A connector says how fast it may send (``Connector.send_limits``: a ``SendLimit`` per sender,
bot or chat). Before each send the deliver job takes a slot of every limit. Per key the pacer keeps
the next free time; taking a slot is, atomically::

    slot = max(now, next_free); next_free = slot + interval; wait = slot - now

so sends keep an even spacing whoever sends them, and a burst queues up behind the first instead
of hitting the provider's limit and its 429s. ``interval`` is ``1 / per_second`` stretched by
MARGIN: the time from taking a slot to the request reaching the provider varies by milliseconds,
and without the margin that jitter could put one send too many into a provider's second.

Backends: on Redis one Lua script per slot (the clock is Redis's own, the keys live under the
broker's namespace and expire once their slot has passed); without Redis (the embedded default)
a dict under a lock, which paces the one process that sends. A RabbitMQ deployment paces through
``OMNIDESK_REDIS_URL`` when it is set, else per process.

Connectors never import this module: they only declare their limits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any, Protocol

from connectors.base import SendLimit

log = logging.getLogger("omnidesk.pacing")

MARGIN = 1.05  # slots 5% further apart than the limit allows (see the module docstring)
KEEP_MS = 60_000  # a key lives this long past its next free slot


def interval(limit: SendLimit) -> float:
    """Seconds between two slots of ``limit``."""
    return MARGIN / limit.per_second


class Pacer(Protocol):
    def take(self, limit: SendLimit) -> float:
        """Take the next slot of ``limit``; the seconds to wait before using it (0: now)."""


class LocalPacer:
    """Slots kept in this process (the embedded default, no Redis)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next_free: dict[str, float] = {}

    def take(self, limit: SendLimit) -> float:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_free.get(limit.key, 0.0))
            self._next_free[limit.key] = slot + interval(limit)
            if len(self._next_free) > 10_000:  # forget keys whose slots are long past
                self._next_free = {k: v for k, v in self._next_free.items() if v > now}
            return slot - now


# KEYS[1]: the key's next free time; ARGV[1]: the interval (s), ARGV[2]: how long to keep it (ms).
# Returns the wait as a string (a Lua number would come back cut to an integer).
TAKE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local next_free = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(now, next_free)
local after = slot + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.6f', after), 'PX', math.ceil((after - now) * 1000) + tonumber(ARGV[2]))
return string.format('%.6f', slot - now)
"""


class RedisPacer:
    """Slots kept in Redis, shared by every process that uses the same Redis and namespace."""

    def __init__(self, client: Any, namespace: str) -> None:
        self.prefix = f"{namespace}:pace:"
        self._script = client.register_script(TAKE_SCRIPT)

    def take(self, limit: SendLimit) -> float:
        return float(self._script(keys=[self.prefix + limit.key], args=[repr(interval(limit)), KEEP_MS]))


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


def take_all(limits: Iterable[SendLimit], pacer: Pacer | None = None) -> float:
    """Take a slot of every limit; the longest wait among them. The slots of the limits that wait
    less stay taken (a small gap in their schedule, never a send too many)."""
    pacer = pacer or _pacer
    return max((pacer.take(limit) for limit in limits if limit.per_second > 0), default=0.0)
