"""Assignment policies: how the eligible agents (online, skilled, with spare capacity) are ordered.

A policy returns ORDER BY clauses over the agents table, best first; the store applies them inside
the transaction that takes the capacity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.sql.elements import ColumnElement

from store.sql import agents

a = agents.c


def least_loaded() -> Sequence[ColumnElement[Any]]:
    """Most spare capacity first; ties to the agent idle longest (never assigned counts as idlest)."""
    return [(a.capacity - a.active_count).desc(), a.last_assigned_at.asc().nulls_first(), a.id.asc()]


def round_robin() -> Sequence[ColumnElement[Any]]:
    """The agent whose last assignment is oldest, whatever their load (for comparison in bench/)."""
    return [a.last_assigned_at.asc().nulls_first(), a.id.asc()]


POLICIES: dict[str, Callable[[], Sequence[ColumnElement[Any]]]] = {
    "least_loaded": least_loaded,
    "round_robin": round_robin,
}
