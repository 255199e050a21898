"""Routing conversations: assignment to the best eligible agent, or the queue.

The decisions are the router's, made in memory (``router.picks.pick`` over ``router.eligibility``
and ``router.queue``); the store loads and locks the state they need and writes the picks in the
same transaction (``store.assignment_batch``), so capacity is checked and taken together.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

from sqlalchemy import Engine

from router import automation
from router.picks import pick
from router.policies import DEFAULT_POLICY, POLICIES
from store.assignment import Outcome
from store.assignment_batch import Decide, assign_batch, pull_for_agent

log = logging.getLogger(__name__)


def decider(policy: str = DEFAULT_POLICY) -> Decide:
    """The routing decision with ``policy`` (a name of ``router.policies.POLICIES``) for the
    conversations whose team names none, as the store's routing transactions take it. KeyError for
    an unknown policy."""
    return functools.partial(pick, default=POLICIES[policy])


def route_conversation(engine: Engine, conversation_id: int, policy: str = "least_loaded") -> Outcome:
    """Assign a conversation that needs routing to the best eligible agent under its team's policy
    (``policy`` when its team names none, or it has no team);
    with nobody eligible it waits in the queue (priority, then waiting time) until capacity frees."""
    return route_conversations(engine, [conversation_id], policy)[0]


def route_conversations(engine: Engine, conversation_ids: Sequence[int], policy: str = "least_loaded", *,
                        max_attempts: int | None = None) -> list[Outcome]:
    """Route many conversations in one transaction, as one after the other in queue order
    (priority, then waiting time) would. Those tried more than ``max_attempts`` times are given
    up (see ``store.assignment_batch.assign_batch``). The automations (language, rules) run
    first, in their own transaction, so the assignment sees what they set (``router.automation``).
    A conversation another transaction holds right now (another router, an acknowledgement's claim),
    at either step, is skipped, not waited on, nor assigned unsorted: it keeps needing routing, its
    outcome ``store.assignment_batch.HELD``: route it again."""
    held = automation.run(engine, conversation_ids).held
    outcomes = assign_batch(engine, conversation_ids, decider(policy), max_attempts, hold=held)
    if log.isEnabledFor(logging.DEBUG):
        assigned = sum(o.agent_id is not None and o.skipped is None for o in outcomes)
        log.debug("batch of %d: %d assigned, %d waiting, %d skipped", len(outcomes), assigned,
                  sum(o.agent_id is None and o.skipped is None for o in outcomes),
                  sum(o.skipped is not None for o in outcomes))
    return outcomes


def fill_agent(engine: Engine, agent_id: int) -> list[int]:
    """An agent freed capacity (resolved, came online, capacity raised): give them the waiting
    conversations they may take, highest priority first, then longest waiting."""
    return pull_for_agent(engine, agent_id, decider())
