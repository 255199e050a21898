"""Reassignment: a conversation whose assignee leaves the customer waiting past the team's
reassignment time goes back to the queue, once per wait.

The store loads the candidates (open, assigned, the customer waiting, in a team that set
``reassign_after``, not yet reassigned for this wait) with what the rule reads; the rule
(``router.reassign.overdue``, passed in) decides; the store writes each move in its own
transaction: the assignee's capacity back, ``needs_routing`` set, ``reassigned_wait`` marking
the wait, a ``reassigned`` row in the assignment history and a ``conversation.updated`` event.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, or_, select, update

from store.dialect import for_update
from store.events import append, event
from store.sla import hours_for
from store.sql import agents, assignments, conversations, teams

c = conversations.c


@dataclasses.dataclass(frozen=True, slots=True)
class Waiting:
    """What the reassignment rule reads of an assigned conversation whose customer waits."""

    conversation_id: int
    assignee_id: int
    waiting_since: datetime
    assigned_at: datetime | None
    reassign_after: float  # seconds of business time
    hours: dict[str, object] | None


def candidates(engine: Engine, now: datetime, *, limit: int = 500) -> list[Waiting]:
    """Assigned open conversations of teams with a reassignment time, waiting, not reassigned
    for this wait yet, whose wait and assignment are both older than the team's time in wall-clock
    time (business time never runs faster, so no other can be overdue); oldest waits first, at
    most ``limit`` a team."""
    assigned_at = (select(func.max(assignments.c.created_at))
                   .where(assignments.c.conversation_id == c.id, assignments.c.agent_id == c.assignee_id)
                   .scalar_subquery())
    found: list[Waiting] = []
    with engine.connect() as conn:
        for team in conn.execute(select(teams.c.id, teams.c.reassign_after)
                                 .where(teams.c.reassign_after.is_not(None)).order_by(teams.c.id)).all():
            threshold = now - timedelta(seconds=team.reassign_after)
            rows = conn.execute(
                select(c.id, c.assignee_id, c.waiting_since, assigned_at.label("assigned_at"))
                .where(c.team_id == team.id, c.status == "open", c.assignee_id.is_not(None),
                       c.waiting_since < threshold,
                       or_(c.reassigned_wait.is_(None), c.reassigned_wait != c.waiting_since),
                       or_(assigned_at.is_(None), assigned_at < threshold))
                .order_by(c.waiting_since, c.id).limit(limit)
            ).all()
            if rows:
                hours = hours_for(conn, team.id)
                found.extend(Waiting(r.id, r.assignee_id, r.waiting_since, r.assigned_at, team.reassign_after, hours)
                             for r in rows)
    return found


def reassign_overdue(engine: Engine, now: datetime,
                     overdue: Callable[[Waiting, datetime], bool]) -> list[Waiting]:
    """Send back to the queue the candidates ``overdue`` names; those moved (each now needs
    routing). A conversation that changed meanwhile (answered, taken) is left alone."""
    moved: list[Waiting] = []
    for waiting in candidates(engine, now):
        if not overdue(waiting, now):
            continue
        with engine.begin() as conn:
            look = select(c.assignee_id, c.waiting_since, c.status).where(c.id == waiting.conversation_id)
            row = conn.execute(for_update(conn, look, of=conversations)).first()
            if row is None or row.status != "open" or row.assignee_id != waiting.assignee_id \
                    or row.waiting_since != waiting.waiting_since:
                continue
            conn.execute(update(conversations).where(c.id == waiting.conversation_id).values(
                assignee_id=None, needs_routing=True, route_attempts=0, route_error=None,
                reassigned_wait=waiting.waiting_since, updated_at=now))
            conn.execute(update(agents).where(agents.c.id == waiting.assignee_id)
                         .values(active_count=agents.c.active_count - 1))
            conn.execute(assignments.insert().values(conversation_id=waiting.conversation_id, agent_id=None,
                                                     by_agent_id=None, reason="reassigned", created_at=now))
            append(conn, [event("conversation.updated", waiting.conversation_id, at=now,
                                agent_id=waiting.assignee_id, assignee_id=None, reason="reassigned",
                                unanswered_agent_id=waiting.assignee_id)])
        moved.append(waiting)
    return moved
