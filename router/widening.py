"""Skills widen with time: a conversation that asks for skills (``conversations.skills``, set by
rules) waits for an agent who has them all for its team's ``skill_wait_seconds`` (default
:data:`SKILL_WAIT_SECONDS`), counted from when the customer started waiting; then any agent of
its team (any agent, with no team) may take it, and its history says so. The scheduler's sweep
applies :func:`due` through the store (``store.requeue.widen_waiting``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine

from store.requeue import widen_waiting

SKILL_WAIT_SECONDS = 120


def due(skills: list[str], waiting_since: datetime | None, wait_seconds: int | None, now: datetime) -> bool:
    """Whether a queued conversation asking for ``skills`` has waited long enough for them."""
    if not skills or waiting_since is None:
        return False
    wait = SKILL_WAIT_SECONDS if wait_seconds is None else wait_seconds
    return now - waiting_since >= timedelta(seconds=wait)


def sweep_skills(engine: Engine) -> list[int]:
    """Widen the conversations :func:`due` names; their ids (to route again)."""
    return widen_waiting(engine, due)
