"""The pick loop: which agent takes which waiting conversation, decided in memory over the state
the store has loaded and locked.

Conversations are served in queue order; each goes to the best eligible agent by its team's
policy (else the default), and that agent's load (in all and in the conversation's capacity
group) and last assignment change at once, so the next pick sees them: a batch spreads as routing
one conversation at a time would.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from router.eligibility import available, eligible
from router.policies import POLICIES, Policy, SortKey
from router.queue import queue
from store.assignment_batch import AgentState, ConversationState, Pick


def pick(conversations: Iterable[ConversationState], agents: list[AgentState], now: datetime, *,
         key: SortKey | None = None, default: Policy | None = None) -> list[Pick]:
    """The picks for ``conversations`` (those in the queue, in its order) among ``agents``. Each
    conversation's agents are ordered by its team's policy (``conversation.policy``), else by
    ``key``, else by the ``default`` policy (least loaded when none is given). Conversations
    nobody eligible can take get no pick (they wait). The agents are updated in memory after
    each pick. Picks are stamped one microsecond apart from ``now``: an agent picked earlier
    counts as idle longer, as with one conversation at a time."""
    fallback = default or POLICIES["least_loaded"]
    room = sum(agent.capacity - agent.active_count for agent in agents if available(agent))
    picks: list[Pick] = []
    for conversation in queue(conversations):
        if room <= 0:  # everyone is full: the rest wait
            break
        fits = [agent for agent in agents if eligible(agent, conversation)]
        if not fits:
            continue
        if conversation.policy in POLICIES:
            order = POLICIES[conversation.policy](conversation, now)
        else:
            order = key or fallback(conversation, now)
        best = min(fits, key=order)
        stamp = now + timedelta(microseconds=len(picks))
        best.active_count += 1
        best.loads[conversation.group] = best.loads.get(conversation.group, 0) + 1
        best.last_assigned_at = stamp
        room -= 1
        picks.append(Pick(conversation.id, best.id, stamp))
    return picks
