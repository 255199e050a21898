"""Routing one conversation: automations first, then assignment (or the queue)."""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from router.policies import POLICIES
from store.assignment import Outcome, assign_next_agent, pull_for_agent

log = logging.getLogger(__name__)


def route_conversation(engine: Engine, conversation_id: int, policy: str = "least_loaded") -> Outcome:
    """Assign a conversation that needs routing to the best eligible agent under ``policy``;
    with nobody eligible it waits in the queue (priority, then waiting time) until capacity frees."""
    outcome = assign_next_agent(engine, conversation_id, POLICIES[policy])
    log.debug("conversation %s -> agent %s (%s)", conversation_id, outcome.agent_id, outcome.skipped or "routed")
    return outcome


def fill_agent(engine: Engine, agent_id: int) -> list[int]:
    """An agent freed capacity (resolved, came online, capacity raised): give them the waiting
    conversations they may take, highest priority first, then longest waiting."""
    return pull_for_agent(engine, agent_id)
