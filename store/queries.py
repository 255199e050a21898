"""Reports read by the admin API: work that stopped after its attempts ran out."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from store.sql import channels, conversations, messages

c = conversations.c
m = messages.c


def failed_jobs(engine: Engine, limit: int) -> list[dict[str, Any]]:
    """Routing given up, replies failed and channels in error, newest first within each kind
    (at most ``limit`` of each), with their last error."""
    with engine.connect() as conn:
        routes = conn.execute(
            select(c.id, c.route_error)
            .where(c.route_error.is_not(None), c.needs_routing.is_(False)).order_by(c.id.desc()).limit(limit)
        ).all()
        sends = conn.execute(
            select(m.id, m.conversation_id, m.status_reason, m.attempts)
            .where(m.direction == "out", m.status == "failed").order_by(m.id.desc()).limit(limit)
        ).all()
        polls = conn.execute(
            select(channels.c.id, channels.c.last_error, channels.c.error_count)
            .where(channels.c.status == "error").order_by(channels.c.id).limit(limit)
        ).all()
    return (
        [{"job": "route", "conversation_id": r.id, "error": r.route_error} for r in routes]
        + [{"job": "deliver", "message_id": s.id, "conversation_id": s.conversation_id, "error": s.status_reason,
            "attempts": s.attempts} for s in sends]
        + [{"job": "poll", "channel_id": p.id, "error": p.last_error, "attempts": p.error_count} for p in polls]
    )
