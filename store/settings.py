"""omnidesk's settings, from the environment (``OMNIDESK_*``) with embedded defaults."""

from __future__ import annotations

import functools
import logging
import secrets
from pathlib import Path

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OMNIDESK_", extra="ignore")

    database_url: str = "sqlite:///./omnidesk.db"
    redis_url: str | None = None  # unset: in-process broker
    public_url: str = "http://localhost:8000"
    secret_key: SecretStr | None = None  # unset: generated once and kept beside the SQLite file
    # unset: .omnidesk/secret_key beside the SQLite file (in the current directory for PostgreSQL)
    secret_key_file: Path | None = None
    log_level: str = "INFO"
    # How long after resolving a new customer message reopens the conversation (else a new one).
    reopen_days: float = 7.0
    # A job that failed (or killed its worker) this many times is marked failed for an admin.
    max_attempts: int = 8
    # The largest file a fetch of a provider-held attachment keeps (bytes); a larger one fails
    # with a reason the agent reads.
    max_attachment_bytes: int = 20 * 1024 * 1024
    # How long a signed link to a reply's file works (seconds), for providers that fetch the files
    # of a message themselves (Twilio's MediaUrl; store.media). Twilio queues a message 4 hours at most.
    media_link_seconds: float = 4 * 3600.0
    retry_base: float = 5.0  # seconds before a failed delivery's first retry; doubles each time
    sweep_interval: float = 5.0  # seconds between store sweeps in the scheduler
    # Work the store says is still to do is re-enqueued when it is older than this (seconds).
    sweep_grace: float = 10.0
    worker_threads: int = 8
    # At start, ``web``, ``worker`` and ``scheduler`` wait this long (seconds) for a database they
    # cannot reach (still starting, restarting, its connections cut) before giving up with a message.
    database_wait: float = 60.0
    # On SIGTERM/SIGINT a worker lets running jobs finish for at most this long (seconds), then exits;
    # what it abandons is found again by the sweep (leases run out). Keep it under your supervisor's
    # kill timeout (docker compose: stop_grace_period, 10 s by default; ours sets 30 s).
    shutdown_grace: float = 20.0
    redis_namespace: str = "omnidesk"
    # The broker, when not Redis at redis_url: amqp://user:pass@host:5672/vhost for RabbitMQ (durable
    # queues), or redis://. Unset: redis_url, else the in-process broker. See brokers.py.
    broker_url: str | None = None
    broker_queue_prefix: str = ""  # RabbitMQ: prefix of the queue names (several installations, one vhost)
    # A worker serves dramatiq's own Prometheus metrics on this port when set (see brokers.py).
    worker_metrics_port: int | None = None
    # Sign-in: refused attempts allowed per email and per client address within the window
    # (seconds) before 429; how long a session lasts, and idle; how long an invite link is valid.
    sign_in_max_failures: int = 5
    sign_in_max_failures_per_ip: int = 20
    sign_in_window: float = 900.0
    session_hours: float = 168.0
    session_idle_hours: float = 12.0
    invite_hours: float = 72.0
    # The event stream (GET /api/v1/events): events older than this are pruned by the sweep; a
    # ": ping" comment this often keeps proxies from closing a quiet stream; the table is read at
    # least this often, should a wake-up be missed.
    events_keep_hours: float = 72.0
    events_ping: float = 15.0
    events_poll: float = 5.0
    # Seconds a web process waits after reading new events before reading again, with few streams
    # open (more with many, up to three times this, and more again beyond 1,000 events a second,
    # sustained: web.events.gather): every stream is woken at most once per this time (fewer,
    # larger writes under load; this much more delay).
    events_gather: float = 0.05
    # Seconds without an inbox heartbeat after which an online agent becomes away (router.presence).
    presence_timeout: float = 90.0
    # Automatic acknowledgements (router.ack): on or off, at most one per conversation in this
    # many hours, and within business hours only when the expected wait is at least this (seconds).
    ack_enabled: bool = True
    ack_period_hours: float = 24.0
    ack_long_wait: float = 900.0
    ack_language: str = "en"  # for conversations whose language has no acknowledgement texts
    # The languages customers are detected in (router.language), ISO 639-1 codes, comma-separated.
    languages: str = "en,es,ca,pt,pl,de,fr,it"
    # Ticket limit: seconds within which a customer's new message joins their latest conversation
    # on the channel instead of opening another (0: off). A channel's config key
    # ``new_conversation_interval`` overrides it (store.inbound.limits).
    new_conversation_interval: float = 0.0
    # Web chat: a visitor whose widget has had no stream open for this long (seconds) has left; an
    # agent's reply they have not read then goes out by the channel's fallback email too.
    webchat_left_after: float = 60.0
    # Web chat writes allowed a minute per visitor and per client address (429 beyond).
    webchat_visitor_rate: int = 60
    webchat_ip_rate: int = 600

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in logging.getLevelNamesMapping():
            raise ValueError(f"unknown log level {value!r}: one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    def language_codes(self) -> tuple[str, ...]:
        """:attr:`languages` as a tuple of lower-case codes."""
        return tuple(dict.fromkeys(code.strip().lower() for code in self.languages.split(",") if code.strip()))

    def sqlite_path(self) -> Path | None:
        """The SQLite file as an absolute path (relative URLs count from the current directory);
        None for another database or an in-memory one."""
        url = make_url(self.database_url)
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        return Path(url.database).expanduser().resolve()

    def database_label(self) -> str:
        """Which database this is, for a person and without a password: the SQLite file's absolute
        path, or the server's host and database name."""
        path = self.sqlite_path()
        if path is not None:
            return f"SQLite {path}"
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite":
            return "SQLite in memory"
        where = f"{url.host or 'localhost'}{f':{url.port}' if url.port else ''}"
        return f"{url.get_backend_name().replace('postgresql', 'PostgreSQL')} {where}/{url.database or ''}"

    def key_file(self) -> Path:
        """Where a generated secret key is kept: beside the SQLite file, so that every command that
        uses one database uses its key, wherever it is run from."""
        if self.secret_key_file is not None:
            return self.secret_key_file
        path = self.sqlite_path()
        return (path.parent if path is not None else Path.cwd()) / ".omnidesk" / "secret_key"


@functools.cache
def get_settings() -> Settings:
    return Settings()


def secret_key(settings: Settings | None = None) -> str:
    """The key that encrypts channel secrets: the configured one, else one generated on first
    use and kept in :meth:`Settings.key_file` (mode 0600)."""
    settings = settings or get_settings()
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value()
    path = settings.key_file()
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(key)
    return key
