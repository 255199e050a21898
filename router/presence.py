"""Presence from the inbox's heartbeat: an agent whose page has stopped beating is away.

The inbox sends ``POST /api/v1/me/heartbeat`` every few seconds while open (``agents.last_seen_at``).
The scheduler's sweep applies :func:`stale` through the store (``store.agents.away_if_stale``):
an agent still ``online`` whose last heartbeat is older than ``OMNIDESK_PRESENCE_TIMEOUT`` becomes
``away``, so the router stops giving them conversations. Their open conversations stay theirs,
unless the conversation's team says to return them (``teams.return_on_away``): those go back to
the queue (``store.requeue.return_from_away``). Agents with no heartbeat at all (API-only
integrations that set presence with ``PUT /agents/{id}/presence``) are left alone.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

from sqlalchemy import Engine

from store.agents import away_if_stale
from store.requeue import return_from_away


def stale(presence: str, last_seen_at: datetime | None, now: datetime, *, timeout: timedelta) -> bool:
    """Whether an agent's presence should become ``away``: online, with a heartbeat once, and none
    for longer than ``timeout``."""
    return presence == "online" and last_seen_at is not None and now - last_seen_at > timeout


def sweep_presence(engine: Engine, timeout_seconds: float) -> list[int]:
    """Set away the agents :func:`stale` names; their ids."""
    return away_if_stale(engine, functools.partial(stale, timeout=timedelta(seconds=timeout_seconds)))


def sweep_away(engine: Engine, timeout_seconds: float) -> list[int]:
    """Set away the agents :func:`stale` names, and give back to the queue the open conversations
    they hold in teams with ``return_on_away``; the ids of those conversations (to route)."""
    return return_from_away(engine, sweep_presence(engine, timeout_seconds))
