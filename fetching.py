"""The fetch job's work: download a file the provider holds (``connectors.base.RemoteAttachment``)
through its channel's connector and record it (store.fetches). ``workers.fetch_attachment`` is the
thin actor around :func:`fetch_one`.

A file larger than ``OMNIDESK_MAX_ATTACHMENT_BYTES`` fails with a reason the agent reads (the
connector is asked to stop reading there; a connector that reads on is checked here as well).
Transient errors are tried again with backoff (the provider's ``retry_after`` wins), up to
``OMNIDESK_MAX_ATTEMPTS``; then the file fails with the last reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from connectors.errors import ConfigError, PermanentError, TransientError
from store import channels as channel_store
from store import fetches
from store.settings import get_settings

log = logging.getLogger("omnidesk.fetching")


def too_large(size: int, limit: int) -> str:
    """The reason a file over the limit is not kept."""
    return f"the file is {_mib(size)}; files over {_mib(limit)} are not kept (OMNIDESK_MAX_ATTACHMENT_BYTES)"


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size} bytes"


def backoff(attempts: int) -> float:
    return min(3600.0, get_settings().retry_base * 2 ** max(0, attempts - 1))


def fetch_one(engine: Any, claim: fetches.FetchClaim, again: Callable[[int, float], None]) -> str:
    """Fetch one claimed file and record the outcome; ``again(attachment_id, delay)`` rings the
    retry of a transient failure. Returns the state the file is left in."""
    settings = get_settings()
    limit, max_attempts = settings.max_attachment_bytes, settings.max_attempts
    attachment_id = claim.attachment_id
    channel = channel_store.load_channel(engine, claim.channel_id)
    if channel is None:
        fetches.mark_failed(engine, attachment_id, "the channel was deleted")
        return "failed"
    try:
        connector = channel_store.connector_for(channel)
        got = connector.fetch(claim.ref, limit)
    except PermanentError as exc:
        fetches.mark_failed(engine, attachment_id, exc.reason)
        return "failed"
    except (TransientError, ConfigError) as exc:
        return _retry(engine, claim, exc.reason, getattr(exc, "retry_after", None), max_attempts, again)
    except Exception as exc:  # a bug, not the provider: kept for the agent, tried again
        log.error("fetching attachment %s failed: %s", attachment_id, type(exc).__name__)
        log.debug("fetching attachment %s failed", attachment_id, exc_info=True)
        return _retry(engine, claim, f"{type(exc).__name__}: {exc}", None, max_attempts, again)
    if len(got.data) > limit:
        fetches.mark_failed(engine, attachment_id, too_large(len(got.data), limit))
        return "failed"
    fetches.mark_done(engine, attachment_id, got.data, content_type=got.content_type, filename=got.filename)
    return "done"


def _retry(engine: Any, claim: fetches.FetchClaim, reason: str, retry_after: float | None, max_attempts: int,
           again: Callable[[int, float], None]) -> str:
    if claim.attempts >= max_attempts:
        fetches.mark_failed(engine, claim.attachment_id, f"gave up after {claim.attempts} attempts: {reason}")
        return "failed"
    delay = retry_after or backoff(claim.attempts)
    fetches.mark_retry(engine, claim.attachment_id, reason, delay)
    again(claim.attachment_id, delay)
    return "pending"
