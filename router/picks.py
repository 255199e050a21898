"""The pick loop: which agent takes which waiting conversation, decided in memory over the state
the store has loaded and locked.

Conversations are served in queue order; each goes to the best eligible agent by the policy's
sort key, and that agent's load and last assignment change at once, so the next pick sees them:
a batch spreads as routing one conversation at a time would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from router.eligibility import available, eligible
from router.queue import queue
from store.assignment_batch import AgentState, ConversationState, Pick

# A policy: a sort key over the agents, best first (see router.policies).
SortKey = Callable[[AgentState], Any]


def pick(conversations: Iterable[ConversationState], agents: list[AgentState], now: datetime, *,
         key: SortKey) -> list[Pick]:
    """The picks for ``conversations`` (those in the queue, in its order) among ``agents``, best
    by ``key``. Conversations nobody eligible can take get no pick (they wait). The agents are
    updated in memory after each pick. Picks are stamped one microsecond apart from ``now``: an
    agent picked earlier counts as idle longer, as with one conversation at a time."""
    room = sum(agent.capacity - agent.active_count for agent in agents if available(agent))
    picks: list[Pick] = []
    for conversation in queue(conversations):
        if room <= 0:  # everyone is full: the rest wait
            break
        fits = [agent for agent in agents if eligible(agent, conversation)]
        if not fits:
            continue
        best = min(fits, key=key)
        stamp = now + timedelta(microseconds=len(picks))
        best.active_count += 1
        best.last_assigned_at = stamp
        room -= 1
        picks.append(Pick(conversation.id, best.id, stamp))
    return picks
