"""The queue: the conversations waiting for an agent, and their order, each defined once here.

A conversation waits in the queue while it is open and nobody holds it. The queue is served by
priority (highest first), then by waiting time (longest first; a conversation with no waiting
time, such as one an agent has already answered, after all those with one), then by id. The
store's SQL forms (``store.assignment_batch.IN_QUEUE`` and ``QUEUE_ORDER``) are tested against
these on both databases.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from store.assignment_batch import ConversationState

# Priority names (the API takes them, rules set them) and the stored number (higher first).
PRIORITIES: dict[str, int] = {"urgent": 3, "high": 1, "normal": 0, "low": -1}


def priority_value(priority: str | int) -> int:
    """The stored priority of a name of ``PRIORITIES`` or a number; ValueError for another name."""
    if isinstance(priority, int):
        return priority
    try:
        return PRIORITIES[priority]
    except KeyError:
        raise ValueError(f"priority must be one of {', '.join(PRIORITIES)} or a number") from None


def priority_name(priority: int) -> str:
    """The name of a stored priority: urgent from 3 up, high from 1, normal at 0, low below."""
    if priority >= PRIORITIES["urgent"]:
        return "urgent"
    if priority >= PRIORITIES["high"]:
        return "high"
    return "normal" if priority == 0 else "low"


def in_queue(conversation: ConversationState) -> bool:
    """The conversation waits for an agent: open and unassigned."""
    return conversation.status == "open" and conversation.assignee_id is None


def pullable(conversation: ConversationState) -> bool:
    """An agent with room pulls it from the queue: it waits, and its routing job has run. One whose
    job has not (it just arrived, or another transaction held it from its automations) has not
    had its language and rules yet, which may give it a team or skills: its job assigns it, to
    this agent if they suit. (SQL: ``store.assignment_batch.PULLABLE``.)"""
    return in_queue(conversation) and not conversation.needs_routing


def queue_key(conversation: ConversationState) -> tuple[int, bool, datetime, int]:
    """Sort key of the queue's order: priority desc, waiting_since asc with none last, then id."""
    waiting = conversation.waiting_since
    return (-conversation.priority, waiting is None, waiting or datetime.min, conversation.id)


def queue(conversations: Iterable[ConversationState]) -> list[ConversationState]:
    """Those of ``conversations`` in the queue, in the queue's order."""
    return sorted((conv for conv in conversations if in_queue(conv)), key=queue_key)
