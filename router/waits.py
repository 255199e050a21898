"""Where a waiting conversation stands in the queue and how long it should wait: one definition
each, used by the conversation API (``queue_position``, ``expected_wait_seconds``) and by the
acknowledgement that tells a customer the expected wait.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Engine

from router.eligibility import fits, group_capacity
from router.queue import queue
from store.assignment_batch import ConversationState
from store.queue_view import Line, waiting_line

# Average handling time (seconds, assignment to resolution) per capacity group when the shop has
# no history yet.
DEFAULT_HANDLE_SECONDS: dict[str, float] = {"email": 1800.0, "chat": 420.0, "messaging": 900.0}


def position(conversation: ConversationState, waiting: Iterable[ConversationState]) -> int | None:
    """The conversation's place (1 = next) in the queue among those of ``waiting`` that compete
    with it for the same agents: same team and same capacity group. None when it is not queued."""
    line = [c.id for c in queue(w for w in waiting if w.team_id == conversation.team_id
                                and w.group == conversation.group)]
    return line.index(conversation.id) + 1 if conversation.id in line else None


def expected_wait(position: int, agents: int, avg_handle_time: float, slots_per_agent: int = 1) -> float | None:
    """Expected seconds until a conversation at ``position`` (1 = next) gets an agent, when
    ``agents`` agents who may take it each work ``slots_per_agent`` conversations at once and a
    conversation takes ``avg_handle_time`` seconds: the queue moves one place each time one of
    the ``agents * slots_per_agent`` slots frees, on average every ``avg_handle_time / slots``
    seconds, so the wait is ``position * avg_handle_time / slots``. None when nobody may take it
    (no agent online): no honest estimate exists."""
    slots = agents * slots_per_agent
    if position < 1 or slots <= 0:
        return None if slots <= 0 else 0.0
    return position * avg_handle_time / slots


def estimate(line: Line) -> tuple[int | None, float | None]:
    """The conversation's place in its line (the store counts those ahead: the SQL form of
    :func:`position`) and its expected wait in seconds (None, None when it
    is not queued; a place and None when nobody online may take it). The agents counted are those
    who fit it (team, language, skills); their slots are their capacities for its group; the
    handling time is the average of the recent ones, else the group's default."""
    conv = line.conversation
    if not line.queued:
        return None, None
    place = line.ahead + 1
    able = [agent for agent in line.agents if fits(agent, conv)]
    slots = sum(group_capacity(agent, conv.group) for agent in able)
    handle = (sum(line.handle_seconds) / len(line.handle_seconds) if line.handle_seconds
              else DEFAULT_HANDLE_SECONDS.get(conv.group, 900.0))
    return place, expected_wait(place, 1 if slots else 0, handle, slots_per_agent=slots)


def queue_place(engine: Engine, conversation_id: int) -> tuple[int | None, float | None]:
    """:func:`estimate` for a stored conversation (None, None when it does not exist)."""
    line = waiting_line(engine, conversation_id)
    return estimate(line) if line is not None else (None, None)
