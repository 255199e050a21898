"""Channels: settings validated by their connector, secrets encrypted, connectors built from them."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import SecretStr
from sqlalchemy import Engine, delete, func, select, update

from connectors import REGISTRY, connector_class
from connectors.base import ChannelConfig, Connector, parse_config
from connectors.errors import ConfigError
from store import crypto
from store.models import MAX_ID, Channel, utcnow
from store.settings import get_settings
from store.sql import channels, conversations, identities, visitors

ch = channels.c


def split_config(kind: str, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate ``values`` for ``kind`` and split them into (public settings, secrets).

    Besides the connector's secret fields, a URL that carries credentials (``user:password@``,
    a query such as ``?token=``) is a secret too: the whole URL goes with the secrets and the
    public settings keep it redacted (see :func:`redact_url`)."""
    if kind not in REGISTRY:
        raise ConfigError(f"unknown channel kind {kind!r}; known: {', '.join(sorted(REGISTRY))}")
    config = parse_config(connector_class(kind), values)
    secret_names = type(config).secret_fields()
    public: dict[str, Any] = {}
    secrets: dict[str, Any] = {}
    for name, value in config.model_dump(mode="json").items():
        if name in secret_names:
            raw = getattr(config, name)
            if raw is not None:
                secrets[name] = raw.get_secret_value() if isinstance(raw, SecretStr) else raw
        elif isinstance(value, str) and redact_url(value) != value:
            public[name], secrets[name] = redact_url(value), value
        else:
            public[name] = value
    return public, secrets


def generated_secrets(config: ChannelConfig, values: dict[str, Any]) -> dict[str, str]:
    """The secrets ``config`` made up because ``values`` left them out (a webhook's secret token):
    saved as made, so that what was registered with the provider is what the channel checks."""
    made = {}
    for name in type(config).secret_fields():
        value = getattr(config, name)
        if name not in values and isinstance(value, SecretStr):
            made[name] = value.get_secret_value()
    return made


def redact_url(value: str) -> str:
    """``value`` with a URL's user, password and query values replaced by ``***``; other text
    as it is."""
    if "://" not in value:
        return value
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return value
    if not parts.scheme or not parts.netloc:
        return value
    netloc = parts.netloc
    if parts.username is not None or parts.password is not None:
        netloc = "***@" + (f"[{host}]" if ":" in host else host) + port
    query = parts.query
    if query:
        query = urlencode([(k, "***") for k, _ in parse_qsl(query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def create_channel(engine: Engine, kind: str, name: str, values: dict[str, Any], *, enabled: bool = True) -> int:
    """Store a new channel (settings validated, secrets encrypted); due for its first poll at once."""
    public, secrets = split_config(kind, values)
    now = utcnow()
    with engine.begin() as conn:
        return conn.execute(
            channels.insert()
            .values(kind=kind, name=name, config=public, secrets=crypto.encrypt(secrets) if secrets else None,
                    enabled=enabled, status="ok", error_count=0, created_at=now, updated_at=now, next_poll_at=now)
            .returning(ch.id)
        ).scalar_one()


def full_config(channel: Channel | Any) -> ChannelConfig:
    """The channel's validated settings with its secrets decrypted."""
    values = dict(channel.config or {})
    values.update(crypto.decrypt(channel.secrets))
    return parse_config(connector_class(channel.kind), values)


def merged_values(channel: Channel | Any, changes: dict[str, Any]) -> dict[str, Any]:
    """Settings after a PATCH: secrets not named in ``changes`` are kept as they were, and so is
    a URL given back as it was shown (redacted)."""
    shown = dict(channel.config or {})
    values = {**shown, **crypto.decrypt(channel.secrets)}
    values.update({k: v for k, v in changes.items() if not (k in shown and v == shown[k] and v != values[k])})
    return values


def webhook_url(channel_id: int) -> str:
    """Where the channel's provider posts to."""
    return f"{get_settings().public_url.rstrip('/')}/webhooks/{channel_id}"


def list_channels(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(channels).order_by(ch.id)).all())


def update_channel(engine: Engine, channel_id: int, *, name: str | None = None, enabled: bool | None = None,
                   values: dict[str, Any] | None = None) -> None:
    """Rename, enable/disable, or replace the settings (``values``, validated, as from
    :func:`merged_values`); new settings clear the channel's error and make it due for a poll."""
    change: dict[str, Any] = {"updated_at": utcnow()}
    if values is not None:
        public, secrets = split_config(load_channel(engine, channel_id).kind, values)
        change.update(config=public, secrets=crypto.encrypt(secrets) if secrets else None, status="ok",
                      last_error=None, error_count=0, next_poll_at=utcnow())
    if name is not None:
        change["name"] = name
    if enabled is not None:
        change["enabled"] = enabled
    with engine.begin() as conn:
        conn.execute(update(channels).where(ch.id == channel_id).values(**change))


def delete_channel(engine: Engine, channel_id: int) -> int:
    """Delete a channel that has no conversations. Returns how many it has: when not 0, nothing
    was deleted (a channel with history can only be disabled)."""
    with engine.begin() as conn:
        used = conn.execute(
            select(func.count()).select_from(conversations).where(conversations.c.channel_id == channel_id)
        ).scalar_one()
        if not used:
            conn.execute(delete(identities).where(identities.c.channel_id == channel_id))
            conn.execute(delete(visitors).where(visitors.c.channel_id == channel_id))
            conn.execute(delete(channels).where(ch.id == channel_id))
        return used


def is_pull(kind: str) -> bool:
    """Whether channels of ``kind`` are polled (False for a kind this installation cannot load)."""
    try:
        return connector_class(kind).capabilities.pull
    except (KeyError, ImportError):
        return False


def connector_for(channel: Channel | Any) -> Connector:
    """The channel's connector, with its secrets: from here on they must stay out of the logs."""
    guard_logs()
    return connector_class(channel.kind)(full_config(channel), channel_id=channel.id,
                                         webhook_url=webhook_url(channel.id))


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")


class RedactUrls(logging.Filter):
    """Redacts the credentials of URLs in a logger's records (see :func:`redact_url`): in its
    arguments, and in its message (which another filter may already have formatted)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(str(a)) if "://" in str(a) else a for a in record.args)
        if isinstance(record.msg, str) and "://" in record.msg:
            record.msg = _URL.sub(lambda found: redact_url(found.group(0)), record.msg)
        return True


def guard_logs(names: tuple[str, ...] = ("httpx",)) -> None:
    """httpx logs every request's URL at info level: a callback URL's password or token would be
    written to the worker's log. Filter those loggers (once)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactUrls) for f in logger.filters):
            logger.addFilter(RedactUrls())


def load_channel(engine: Engine, channel_id: int) -> Any:
    """The channel's row, or None (also for an id no 64-bit integer holds)."""
    if not 0 < channel_id <= MAX_ID:
        return None
    with engine.connect() as conn:
        return conn.execute(select(channels).where(ch.id == channel_id)).first()


def mark_error(engine: Engine, channel_id: int, error: str, *, backoff: float, started: datetime) -> bool:
    """The channel failed (e.g. its login was refused): visible to admins, next poll delayed.
    Returns True when a poll was asked for meanwhile (see :func:`mark_ok`)."""
    with engine.begin() as conn:
        conn.execute(
            update(channels)
            .where(ch.id == channel_id)
            .values(status="error", last_error=error[:2000], error_count=ch.error_count + 1, updated_at=utcnow())
        )
        return _schedule(conn, channel_id, backoff, started)


def mark_ok(engine: Engine, channel_id: int, next_poll_in: float, *, started: datetime) -> bool:
    """A poll that began at ``started`` succeeded. Returns True when a poll was asked for while
    it ran (new mail announced, settings changed): the caller polls again at once, since what
    was announced may have come after this poll looked."""
    with engine.begin() as conn:
        conn.execute(update(channels).where(ch.id == channel_id).values(status="ok", last_error=None, error_count=0))
        return _schedule(conn, channel_id, next_poll_in, started)


def _schedule(conn: Any, channel_id: int, delay: float, started: datetime) -> bool:
    """The next poll ``delay`` from now, unless the next poll was set after this one began: then
    True when that was a poll asked for (:func:`poll_now`: due already), False when it was another
    poller's schedule (due later, e.g. a rate limit's reset): a poll that overlapped a failed one
    must not poll again at once, and again, until that reset."""
    now = utcnow()
    pushed = conn.execute(
        update(channels)
        .where(ch.id == channel_id, (ch.next_poll_at.is_(None)) | (ch.next_poll_at <= started))
        .values(next_poll_at=now + timedelta(seconds=delay))
    ).rowcount
    if pushed:
        return False
    return conn.execute(select(ch.id).where(ch.id == channel_id, ch.next_poll_at <= now)).first() is not None


def claim_poll(engine: Engine, channel_id: int, owner: str, lease: float) -> bool:
    """Take the channel's poll lock: exactly one poller works a mailbox at a time."""
    now = utcnow()
    with engine.begin() as conn:
        got = conn.execute(
            update(channels)
            .where(ch.id == channel_id, ch.enabled.is_(True),
                   (ch.poll_lock_until.is_(None)) | (ch.poll_lock_until < now) | (ch.poll_owner == owner))
            .values(poll_owner=owner, poll_lock_until=now + timedelta(seconds=lease))
        ).rowcount
    return bool(got)


def extend_poll(engine: Engine, channel_id: int, owner: str, lease: float) -> bool:
    with engine.begin() as conn:
        return bool(
            conn.execute(
                update(channels)
                .where(ch.id == channel_id, ch.poll_owner == owner)
                .values(poll_lock_until=utcnow() + timedelta(seconds=lease))
            ).rowcount
        )


def release_poll(engine: Engine, channel_id: int, owner: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(channels)
            .where(ch.id == channel_id, ch.poll_owner == owner)
            .values(poll_owner=None, poll_lock_until=None)
        )


def poll_now(engine: Engine, channel_id: int) -> None:
    """Make the channel due at once (new mail announced, settings changed)."""
    with engine.begin() as conn:
        conn.execute(update(channels).where(ch.id == channel_id).values(next_poll_at=utcnow()))
