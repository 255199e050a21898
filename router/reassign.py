"""Reassignment when the assignee does not answer: the rule, applied through the store
(``store.reassign``) by the scheduler's sweep.

A conversation goes back to the queue when its customer has waited, since the later of the
wait's start and its assignment to the current agent, longer than its team's ``reassign_after``
counted in the team's business hours (router.hours). Once per wait: the store marks the wait.
It is routed again at once to the next agent, never to the one who left it unanswered (who has
just got room back, so the policy alone would often pick them again); with nobody else eligible it
waits in the queue.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine

from router.hours import business_seconds_between
from router.route import decider
from router.sla import hours_of
from store.assignment_batch import AgentState, ConversationState, Decide, Pick, assign_batch
from store.reassign import Waiting, reassign_overdue

log = logging.getLogger("omnidesk.router.reassign")


def overdue(waiting: Waiting, now: datetime) -> bool:
    """The assignee has left the customer waiting past the team's reassignment time."""
    since = max(waiting.waiting_since, waiting.assigned_at or waiting.waiting_since)
    return business_seconds_between(hours_of(waiting.hours), since, now) > waiting.reassign_after  # type: ignore[arg-type]


def excluding(decide: Decide, agent_id: int) -> Decide:
    """``decide`` among the agents other than ``agent_id``."""
    def without(conversations: Sequence[ConversationState], agents: list[AgentState], now: datetime) -> list[Pick]:
        return decide(conversations, [agent for agent in agents if agent.id != agent_id], now)
    return without


def sweep_reassign(engine: Engine, now: datetime) -> dict[int, int | None]:
    """Return overdue conversations to the queue and route each to another agent: conversation id
    -> its new agent (None: it waits in the queue). Should routing fail, the conversation still
    needs routing and the sweep's routing finds it."""
    moved: dict[int, int | None] = {}
    for waiting in reassign_overdue(engine, now, overdue):
        try:
            [outcome] = assign_batch(engine, [waiting.conversation_id], excluding(decider(), waiting.assignee_id))
            moved[waiting.conversation_id] = outcome.agent_id
        except Exception as exc:  # noqa: BLE001 - the store still says it needs routing
            log.warning("conversation %s: routing after reassignment failed (%s)", waiting.conversation_id, exc)
            moved[waiting.conversation_id] = None
    return moved
