"""Conversations routed afresh by a routing rule over time: those that waited long enough for an
agent with their skills (any agent of the team may now take them), and those of an agent set away
whose team gives them back to the queue. The decisions are the router's (``router.widening``,
``router.presence``), passed in; this module loads, locks and writes.

Both write a private note (automatic, by nobody) that the conversation's history shows, its
``message.created`` and ``conversation.updated`` events, and mark the conversations as needing
routing: the caller rings the router (and the sweep would find them anyway).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection, Engine, func, select, update

from store.dialect import for_update
from store.events import append, event
from store.models import utcnow
from store.sql import agents, assignments, conversations, messages, teams

a = agents.c
c = conversations.c

# (required skills, waiting since, the team's wait in seconds or None, now) -> widen it now?
WidenDue = Callable[[list[str], datetime | None, int | None, datetime], bool]


def _note(conn: Connection, conversation_id: int, channel_id: int, text: str, now: datetime) -> int:
    message_id = conn.execute(messages.insert().values(
        conversation_id=conversation_id, channel_id=channel_id, direction="out", text=text, private=True,
        automatic=True, status="sent", attempts=0, created_at=now).returning(messages.c.id)).scalar_one()
    return int(message_id)


def widen_waiting(engine: Engine, due: WidenDue) -> list[int]:
    """Conversations in the queue that ask for skills and have waited for them as long as ``due``
    allows are widened: any agent of their team (any agent, with no team) may take them. Returns
    their ids, now needing routing."""
    now = utcnow()
    with engine.begin() as conn:
        look = (select(c.id, c.channel_id, c.skills, c.waiting_since, teams.c.skill_wait_seconds)
                .select_from(conversations.outerjoin(teams, teams.c.id == c.team_id))
                .where(c.status == "open", c.assignee_id.is_(None), c.skills_widened_at.is_(None),
                       c.skills.is_not(None)))
        rows = conn.execute(for_update(conn, look, of=conversations, key_share=True, skip_locked=True)).all()
        widened = []
        for row in rows:
            skills = [s for s in (row.skills if isinstance(row.skills, list) else []) if isinstance(s, str)]
            if skills and due(skills, row.waiting_since, row.skill_wait_seconds, now):
                widened.append(row)
        if not widened:
            return []
        conn.execute(update(conversations).where(c.id.in_([r.id for r in widened]))
                     .values(skills_widened_at=now, needs_routing=True, route_attempts=0, route_error=None,
                             updated_at=now))
        told = []
        for row in widened:
            skills = ", ".join(s for s in row.skills if isinstance(s, str))
            note = _note(conn, row.id, row.channel_id, f"No agent with the skills {skills} took this conversation "
                         "in time: any agent of its team may take it now.", now)
            told += [event("message.created", row.id, at=now, message_id=note, direction="out", private=True),
                     event("conversation.updated", row.id, at=now, skills_widened=True)]
        append(conn, told)
    return [r.id for r in widened]


def return_from_away(engine: Engine, agent_ids: list[int]) -> list[int]:
    """The open conversations the agents of ``agent_ids`` (just set away) hold in teams that give
    them back (``teams.return_on_away``) go back to the queue, each agent's capacity with them.
    Returns the conversations' ids, now needing routing."""
    if not agent_ids:
        return []
    now = utcnow()
    with engine.begin() as conn:
        # The agents' rows first, in id order, as every assignment locks them.
        look = select(a.id).where(a.id.in_(agent_ids), a.presence != "online").order_by(a.id)
        away = conn.execute(for_update(conn, look, of=agents, key_share=True)).scalars().all()
        if not away:
            return []
        giving = select(teams.c.id).where(teams.c.return_on_away.is_(True))
        look = (select(c.id, c.channel_id, c.assignee_id)
                .where(c.assignee_id.in_(away), c.status == "open", c.team_id.in_(giving)).order_by(c.id))
        rows = conn.execute(for_update(conn, look, of=conversations, key_share=True)).all()
        if not rows:
            return []
        for row in rows:
            conn.execute(update(conversations).where(c.id == row.id, c.assignee_id == row.assignee_id).values(
                assignee_id=None, needs_routing=True, route_attempts=0, route_error=None, updated_at=now,
                waiting_since=func.coalesce(c.waiting_since, now)))
            conn.execute(update(agents).where(a.id == row.assignee_id).values(active_count=a.active_count - 1))
        conn.execute(assignments.insert(), [
            {"conversation_id": r.id, "agent_id": None, "by_agent_id": None, "reason": "away", "created_at": now}
            for r in rows])
        told = []
        for row in rows:
            note = _note(conn, row.id, row.channel_id, "Its agent went away: the conversation is back in the "
                         "queue for the next agent.", now)
            told += [event("message.created", row.id, at=now, message_id=note, direction="out", private=True),
                     event("conversation.updated", row.id, at=now, agent_id=row.assignee_id, assignee_id=None,
                           reason="away")]
        append(conn, told)
    return [r.id for r in rows]
