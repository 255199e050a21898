"""Assignment policies: how the eligible agents (online, skilled, with spare capacity) are ordered.

A policy is a sort key over ``AgentState``, best first, used by the pick loop
(``router.picks.pick``), which updates each agent after every pick, so a batch spreads as
one-at-a-time routing would.
"""

from __future__ import annotations

from datetime import datetime

from router.picks import SortKey
from store.assignment_batch import AgentState

# Never assigned sorts before any real time.
_NEVER = datetime.min


def least_loaded(agent: AgentState) -> tuple[int, datetime, int]:
    """Most spare capacity first; ties to the agent idle longest (never assigned counts as idlest)."""
    return (agent.active_count - agent.capacity, agent.last_assigned_at or _NEVER, agent.id)


def round_robin(agent: AgentState) -> tuple[datetime, int]:
    """The agent whose last assignment is oldest, whatever their load (for comparison in bench/)."""
    return (agent.last_assigned_at or _NEVER, agent.id)


POLICIES: dict[str, SortKey] = {
    "least_loaded": least_loaded,
    "round_robin": round_robin,
}
