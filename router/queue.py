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


def in_queue(conversation: ConversationState) -> bool:
    """The conversation waits for an agent: open and unassigned."""
    return conversation.status == "open" and conversation.assignee_id is None


def queue_key(conversation: ConversationState) -> tuple[int, bool, datetime, int]:
    """Sort key of the queue's order: priority desc, waiting_since asc with none last, then id."""
    waiting = conversation.waiting_since
    return (-conversation.priority, waiting is None, waiting or datetime.min, conversation.id)


def queue(conversations: Iterable[ConversationState]) -> list[ConversationState]:
    """Those of ``conversations`` in the queue, in the queue's order."""
    return sorted((conv for conv in conversations if in_queue(conv)), key=queue_key)
