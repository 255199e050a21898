"""Assignment policies: how the eligible agents (online, skilled, with spare capacity) are ordered.

Each policy comes in two forms that must agree. ``POLICIES`` holds ORDER BY clauses over the agents
table, best first, for the one-conversation paths, which let the database pick inside the
transaction that takes the capacity. ``SORT_KEYS`` holds the same order as a Python sort key over
``AgentState`` for batch routing, which locks the eligible agents once and picks in memory,
updating each agent after every pick so a batch spreads as one-at-a-time routing would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.sql.elements import ColumnElement

from store.assignment_batch import AgentState
from store.sql import agents

a = agents.c

# Never assigned sorts before any real time, as NULLS FIRST does in SQL.
_NEVER = datetime.min


def least_loaded() -> Sequence[ColumnElement[Any]]:
    """Most spare capacity first; ties to the agent idle longest (never assigned counts as idlest)."""
    return [(a.capacity - a.active_count).desc(), a.last_assigned_at.asc().nulls_first(), a.id.asc()]


def least_loaded_key(agent: AgentState) -> tuple[int, datetime, int]:
    return (agent.active_count - agent.capacity, agent.last_assigned_at or _NEVER, agent.id)


def round_robin() -> Sequence[ColumnElement[Any]]:
    """The agent whose last assignment is oldest, whatever their load (for comparison in bench/)."""
    return [a.last_assigned_at.asc().nulls_first(), a.id.asc()]


def round_robin_key(agent: AgentState) -> tuple[datetime, int]:
    return (agent.last_assigned_at or _NEVER, agent.id)


POLICIES: dict[str, Callable[[], Sequence[ColumnElement[Any]]]] = {
    "least_loaded": least_loaded,
    "round_robin": round_robin,
}

SORT_KEYS: dict[str, Callable[[AgentState], Any]] = {
    "least_loaded": least_loaded_key,
    "round_robin": round_robin_key,
}
