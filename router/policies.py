"""Assignment policies: how the eligible agents (online, skilled, with spare capacity in the
conversation's group) are ordered, chosen per team (``teams.policy``).

A policy gives, for one conversation, a sort key over ``AgentState``, best first, used by the
pick loop (``router.picks.pick``), which updates each agent after every pick, so a batch spreads
as one-at-a-time routing would. Only eligible agents are ever ordered, so every policy keeps to
capacity.

- ``least_loaded`` (default): most spare capacity first, then the agent idle longest.
- ``round_robin``: the agent whose last assignment is oldest, among those with room.
- ``sticky``: a returning customer goes back to the agent who last helped them, when that was
  within the team's ``sticky_seconds`` and the agent may take it now; else least loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from store.assignment_batch import AgentState, ConversationState

# A sort key over the agents, best first.
SortKey = Callable[[AgentState], Any]
# A policy: the sort key for one conversation at a time.
Policy = Callable[[ConversationState, datetime], SortKey]

# Never assigned sorts before any real time.
_NEVER = datetime.min
# A team with the sticky policy and no window of its own: a day.
STICKY_SECONDS = 24 * 3600


def least_loaded(agent: AgentState) -> tuple[int, datetime, int]:
    """Most spare capacity first; ties to the agent idle longest (never assigned counts as idlest)."""
    return (agent.active_count - agent.capacity, agent.last_assigned_at or _NEVER, agent.id)


def round_robin(agent: AgentState) -> tuple[datetime, int]:
    """The agent whose last assignment is oldest (eligibility has left only those with room)."""
    return (agent.last_assigned_at or _NEVER, agent.id)


def returning(conversation: ConversationState, now: datetime) -> int | None:
    """The agent a returning customer goes back to under ``sticky``: the one who last helped them,
    if that was at most the team's window (``sticky_seconds``, default a day) ago; else None."""
    if conversation.previous_agent_id is None or conversation.previous_at is None:
        return None
    window = timedelta(seconds=conversation.sticky_seconds if conversation.sticky_seconds is not None
                       else STICKY_SECONDS)
    return conversation.previous_agent_id if now - conversation.previous_at <= window else None


def sticky(conversation: ConversationState, now: datetime) -> SortKey:
    """The previous agent first (when :func:`returning` names one), then least loaded."""
    previous = returning(conversation, now)
    if previous is None:
        return least_loaded
    return lambda agent: (agent.id != previous, *least_loaded(agent))


POLICIES: dict[str, Policy] = {
    "least_loaded": lambda _conversation, _now: least_loaded,
    "round_robin": lambda _conversation, _now: round_robin,
    "sticky": sticky,
}
DEFAULT_POLICY = "least_loaded"
