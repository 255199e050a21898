"""Automatic acknowledgements: what the rule (``router.ack``) reads of a conversation, and the
claim that makes them at most one per conversation per period.

The acknowledgement itself is a normal reply (``store.outbound.create_reply`` with
``automatic=True``: a pending row and its deliver job), which leaves the customer waiting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, case, func, or_, select, update

from store import reachability
from store.outbound import window_end
from store.sla import hours_for
from store.sql import agents, channels, conversations, messages

c = conversations.c
m = messages.c


@dataclasses.dataclass(frozen=True, slots=True)
class AckState:
    """What the acknowledgement rule reads of a conversation."""

    conversation_id: int
    status: str
    assignee_id: int | None
    language: str | None
    channel_kind: str
    waiting_since: datetime | None
    acked_at: datetime | None
    last_in_automatic: bool  # the customer's last message was automatic mail (never answer it)
    window_end: datetime | None  # the channel's reply window end (None: no window)
    unreachable: str | None  # why the customer cannot be written to here, if so
    hours: dict[str, Any] | None  # the team's (or shop's) business hours, JSON
    agents_online: int
    spare_capacity: int  # room the online agents have now, summed


def ack_state(engine: Engine, conversation_id: int) -> AckState | None:
    """The state of one conversation for the rule; None when there is none."""
    return ack_states(engine, [conversation_id]).get(conversation_id)


def ack_states(engine: Engine, conversation_ids: Iterable[int]) -> dict[int, AckState]:
    """The state of each of the conversations for the rule (those that exist), read together: a
    job acknowledges the conversations of a batch of inbound messages, and a handful of queries for
    all of them cost less than as many per conversation (which made the acknowledgements most of
    a worker's work at a few hundred messages a second)."""
    ids = sorted(set(conversation_ids))
    if not ids:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(
            select(c.id, c.status, c.assignee_id, c.language, c.waiting_since, c.acked_at, c.team_id,
                   channels.c.kind, reachability.reason_column(c.contact_id, c.channel_id))
            .join(channels, channels.c.id == c.channel_id).where(c.id.in_(ids))
        ).all()
        if not rows:
            return {}
        newest = (select(func.max(m.id).label("id")).where(m.conversation_id.in_(ids), m.direction == "in")
                  .group_by(m.conversation_id).subquery())
        last_in = {r.conversation_id: r for r in conn.execute(
            select(m.conversation_id, m.automatic, m.created_at).join(newest, newest.c.id == m.id))}
        online, spare = conn.execute(select(
            func.count(), func.coalesce(func.sum(case((agents.c.capacity > agents.c.active_count,
                                                      agents.c.capacity - agents.c.active_count), else_=0)), 0))
            .where(agents.c.presence == "online", agents.c.active.is_(True))).one()
        hours = {team_id: hours_for(conn, team_id) for team_id in {row.team_id for row in rows}}
    states = {}
    for row in rows:
        last = last_in.get(row.id)
        states[row.id] = AckState(
            conversation_id=row.id, status=row.status, assignee_id=row.assignee_id, language=row.language,
            channel_kind=row.kind, waiting_since=row.waiting_since, acked_at=row.acked_at,
            last_in_automatic=bool(last.automatic) if last is not None else False,
            window_end=window_end(row.kind, last.created_at if last is not None else None),
            unreachable=row.unreachable_reason, hours=hours[row.team_id],
            agents_online=int(online), spare_capacity=int(spare))
    return states


def claim(engine: Engine, conversation_id: int, now: datetime, period: timedelta) -> bool:
    """Take the conversation's acknowledgement for this period: True for the one caller that
    may send it (no acknowledgement within ``period`` before ``now``)."""
    with engine.begin() as conn:
        return bool(conn.execute(
            update(conversations)
            .where(c.id == conversation_id, or_(c.acked_at.is_(None), c.acked_at <= now - period))
            .values(acked_at=now)
        ).rowcount)
