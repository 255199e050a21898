"""What the estimate of a waiting conversation's place and wait reads (``router.waits``): the
conversation, how many of its team and capacity group are ahead of it in the queue, the agents who
could take it (active, online, of its team), and recent handling times in its group. Read without
locks: an estimate shown to people, not a decision written.

``ahead`` is the SQL form of the queue's order (``router.queue.queue_key``) restricted to one
conversation's line; it is tested against ``router.waits.position`` on both databases."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from connectors import capacity_group
from store.assignment_batch import (
    GROUP_OF_KIND,
    IN_QUEUE,
    STATE,
    STATE_FROM,
    AgentState,
    ConversationState,
    conversation_state,
    load_agents,
    load_skills,
)
from store.sql import agent_teams, agents, assignments, channels, conversations

c = conversations.c
t = assignments.c

# Assignment log rows read for the handling times: the most recent ones, by id.
HANDLED_SAMPLE = 2000


@dataclasses.dataclass(frozen=True, slots=True)
class Line:
    conversation: ConversationState
    queued: bool  # it is in the queue
    ahead: int  # queued conversations of its team and group before it
    agents: list[AgentState]  # active and online, of its team (all, for a conversation of none)
    handle_seconds: list[float]  # recent times from assignment to resolution, in its group


def ahead_of(conv: ConversationState) -> ColumnElement[bool]:
    """Conversations before ``conv`` in its line: in the queue, same team, same capacity group, and
    earlier in the queue's order (priority desc, waiting_since asc with none last, id)."""
    if conv.waiting_since is None:
        earlier = or_(c.waiting_since.is_not(None), c.id < conv.id)
    else:
        earlier = or_(c.waiting_since < conv.waiting_since,
                      and_(c.waiting_since == conv.waiting_since, c.id < conv.id))
    same_team = c.team_id.is_(None) if conv.team_id is None else c.team_id == conv.team_id
    return and_(IN_QUEUE, same_team, conv.group == GROUP_OF_KIND,
                or_(c.priority > conv.priority, and_(c.priority == conv.priority, earlier)))


def waiting_line(engine: Engine, conversation_id: int) -> Line | None:
    """The line the conversation stands in; None when it does not exist."""
    with engine.connect() as conn:
        row = conn.execute(select(*STATE, IN_QUEUE.label("queued")).select_from(STATE_FROM)
                           .where(c.id == conversation_id)).first()
        if row is None:
            return None
        conv = conversation_state(row)
        ahead = conn.execute(select(func.count()).select_from(conversations.join(channels, channels.c.id
                                                                                == c.channel_id))
                             .where(ahead_of(conv))).scalar_one() if row.queued else 0
        where = and_(agents.c.active.is_(True), agents.c.presence == "online")
        if conv.team_id is not None:
            where = and_(where, agents.c.id.in_(select(agent_teams.c.agent_id)
                                                .where(agent_teams.c.team_id == conv.team_id)))
        pool = load_agents(conn, where, lock=False)
        load_skills(conn, pool, [conv], everything=True)
        recent = select(t.id).order_by(t.id.desc()).limit(HANDLED_SAMPLE).subquery()
        log = conn.execute(select(t.conversation_id, t.agent_id, t.reason, t.created_at, channels.c.kind)
                           .select_from(assignments.join(conversations, c.id == t.conversation_id)
                                        .join(channels, channels.c.id == c.channel_id))
                           .where(t.id.in_(select(recent.c.id))).order_by(t.id)).all()
    return Line(conv, bool(row.queued), int(ahead), pool, handled(log, conv.group))


def handled(log: list[Any], group: str) -> list[float]:
    """Seconds from each assignment to the resolution that ended it, for conversations of
    ``group``, from assignment log rows in order."""
    taken: dict[int, Any] = {}
    out = []
    for entry in log:
        if capacity_group(entry.kind) != group:
            continue
        if entry.reason == "resolved":
            since = taken.pop(entry.conversation_id, None)
            if since is not None and entry.created_at >= since:
                out.append((entry.created_at - since).total_seconds())
        elif entry.agent_id is not None:
            taken[entry.conversation_id] = entry.created_at
        else:
            taken.pop(entry.conversation_id, None)
    return out
