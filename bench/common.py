"""What the benchmarks share: scratch PostgreSQL databases, omnidesk's settings pointed at them,
percentiles, and the last line of JSON."""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import socket
from collections.abc import Iterator, Sequence
from typing import Any

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


@contextlib.contextmanager
def scratch_database(admin_url: str = DEFAULT_PG, *, keep: bool = False) -> Iterator[str]:
    """A new, empty PostgreSQL database for one run, dropped afterwards unless ``keep``."""
    import psycopg

    name = f"omnidesk_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def use_database(url: str, **env: str) -> dict[str, str]:
    """Point this process's omnidesk at ``url`` (settings and engine caches reset). Returns the
    environment, for child processes."""
    from store.db import get_engine
    from store.settings import get_settings

    values = {"OMNIDESK_DATABASE_URL": url, "OMNIDESK_SECRET_KEY": os.environ.get("OMNIDESK_SECRET_KEY")
              or secrets.token_urlsafe(32), **env}
    os.environ.update(values)
    get_settings.cache_clear()
    get_engine.cache_clear()
    return {**os.environ, **values}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))]


def emit(result: dict[str, Any]) -> None:
    """The benchmark's last line: one JSON object of its figures."""
    print(json.dumps(result, ensure_ascii=False), flush=True)
