"""omnidesk's settings, from the environment (``OMNIDESK_*``) with embedded defaults."""

from __future__ import annotations

import functools
import secrets
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OMNIDESK_", extra="ignore")

    database_url: str = "sqlite:///./omnidesk.db"
    redis_url: str | None = None  # unset: in-process broker
    public_url: str = "http://localhost:8000"
    secret_key: str | None = None  # unset: generated once and kept beside the SQLite file
    secret_key_file: Path = Path("./.omnidesk/secret_key")
    # How long after resolving a new customer message reopens the conversation (else a new one).
    reopen_days: float = 7.0
    # A job that failed (or killed its worker) this many times is marked failed for an admin.
    max_attempts: int = 8
    retry_base: float = 5.0  # seconds before a failed delivery's first retry; doubles each time
    sweep_interval: float = 5.0  # seconds between store sweeps in the scheduler
    # Work the store says is still to do is re-enqueued when it is older than this (seconds).
    sweep_grace: float = 10.0
    worker_threads: int = 8
    redis_namespace: str = "omnidesk"
    # The broker, when not Redis at redis_url: amqp://user:pass@host:5672/vhost for RabbitMQ (durable
    # queues), or redis://. Unset: redis_url, else the in-process broker. See brokers.py.
    broker_url: str | None = None
    broker_queue_prefix: str = ""  # RabbitMQ: prefix of the queue names (several installations, one vhost)
    # A worker serves dramatiq's own Prometheus metrics on this port when set (see brokers.py).
    worker_metrics_port: int | None = None


@functools.cache
def get_settings() -> Settings:
    return Settings()


def secret_key(settings: Settings | None = None) -> str:
    """The key that encrypts channel secrets: the configured one, else one generated on first
    use and kept in ``secret_key_file`` (mode 0600)."""
    settings = settings or get_settings()
    if settings.secret_key:
        return settings.secret_key
    path = settings.secret_key_file
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(key)
    return key
