"""SLA clocks: a response target per wait of the customer, kept with the conversation.

A clock starts when the customer starts waiting (``conversations.waiting_since``): the first
response's clock while the conversation has had no answer, the next response's after that. It is
answered by the agent's reply (``store.outbound.create_reply``), in the reply's transaction. A
clock is live while its conversation (not resolved) still waits since its start; resolving, or a
wait that ended otherwise, ends it unanswered (``ended_at``, set by the sweep when it finds it).

Due times are business time (``router.hours``), computed by the router's rule, which the caller
passes in (:data:`Deadline`, ``router.sla.deadline``): the store loads what the rule needs (the
team's hours, else the shop's, and the SLA settings) and writes what it answers. The inbound
transaction starts clocks when its caller passes the rule (``workers.ingest`` does: every
customer message comes that way); the sweep writes near-breach and breach events once each
(:func:`note_due`). A conversation that goes back to the queue without a customer message (an
agent unassigns it after answering) has no clock: nobody is owed an answer.

Shop-wide settings (``shop_config``): ``hours`` (default business hours), ``sla`` (targets),
read with :func:`config` and written with :func:`set_config`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from store.dialect import set_due_times
from store.events import append, event
from store.models import utcnow
from store.sql import channels, conversations, insert_ignore, insert_many, shop_config, sla_clocks, teams

c = conversations.c
k = sla_clocks.c


@dataclasses.dataclass(frozen=True, slots=True)
class ClockStart:
    """What the due-time rule reads of a wait that starts."""

    kind: str  # first | next
    channel_kind: str
    priority: int
    started_at: datetime
    hours: dict[str, Any] | None  # the team's business hours (JSON), else the shop's; None: always open
    sla: dict[str, Any] | None  # the shop's SLA settings (JSON); None: the defaults


# The rule: (near-breach time, due time) of a clock; None for a time never reached.
Deadline = Callable[[ClockStart], tuple[datetime | None, datetime | None]]


def config(conn: Connection, key: str) -> dict[str, Any] | None:
    """A shop-wide setting (``hours``, ``sla``); None when never set."""
    return conn.execute(select(shop_config.c.value).where(shop_config.c.key == key)).scalar()


def set_config(engine: Engine, key: str, value: dict[str, Any] | None) -> None:
    """Set (or, with None, remove) a shop-wide setting."""
    with engine.begin() as conn:
        conn.execute(shop_config.delete().where(shop_config.c.key == key))
        if value is not None:
            conn.execute(insert_ignore(conn, shop_config, ["key"]).values(key=key, value=value))


def hours_for(conn: Connection, team_id: int | None) -> dict[str, Any] | None:
    """The business hours (JSON) that apply to a team: its own, else the shop's default."""
    if team_id is not None:
        own = conn.execute(select(teams.c.hours).where(teams.c.id == team_id)).scalar()
        if own is not None:
            return own  # type: ignore[no-any-return]
    return config(conn, "hours")


def start_clocks(conn: Connection, conversation_ids: Iterable[int], deadline: Deadline) -> None:
    """Start the clock of each of ``conversation_ids`` whose customer waits and that has no live
    clock for this wait; its due time goes on the conversation. No event of its own: the
    message's transaction writes the conversation's (created or updated), on which the inbox
    reads the conversation again, due time included."""
    ids = sorted(set(conversation_ids))
    if not ids:
        return
    rows = conn.execute(
        select(c.id, c.team_id, c.priority, c.waiting_since, c.first_response_at, channels.c.kind)
        .join(channels, channels.c.id == c.channel_id)
        .where(c.id.in_(ids), c.status != "resolved", c.waiting_since.is_not(None),
               ~select(k.id).where(k.conversation_id == c.id, k.answered_at.is_(None),
                                   k.started_at == c.waiting_since).exists())
    ).all()
    if not rows:
        return
    sla = config(conn, "sla")
    hours: dict[int | None, dict[str, Any] | None] = {}
    clocks, dues = [], []
    # A batch's new waits mostly share their start (the batch's time): one computation each kind.
    computed: dict[tuple[Any, ...], tuple[datetime | None, datetime | None]] = {}
    for row in rows:
        if row.team_id not in hours:
            hours[row.team_id] = hours_for(conn, row.team_id)
        kind = "first" if row.first_response_at is None else "next"
        key = (kind, row.kind, row.priority, row.waiting_since, row.team_id)
        if key not in computed:
            computed[key] = deadline(ClockStart(kind, row.kind, row.priority, row.waiting_since, hours[row.team_id],
                                                sla))
        near, due = computed[key]
        clocks.append({"conversation_id": row.id, "kind": kind, "channel_kind": row.kind, "priority": row.priority,
                       "started_at": row.waiting_since, "near_at": near, "due_at": due})
        dues.append((row.id, due if kind == "first" else None, due if kind == "next" else None))
    insert_many(conn, sla_clocks, clocks)
    set_due_times(conn, dues)


def retarget(engine: Engine, conversation_id: int, deadline: Deadline) -> bool:
    """The conversation's priority or team changed: its live clock takes the target and hours
    they now call for (from the same start), and the conversation its new due time. Marks already
    written stay (a breach noted stays noted). False when no clock is running."""
    with engine.begin() as conn:
        row = conn.execute(
            select(k.id, k.kind, k.started_at, c.team_id, c.priority, channels.c.kind.label("channel_kind"))
            .join(conversations, c.id == k.conversation_id).join(channels, channels.c.id == c.channel_id)
            .where(k.conversation_id == conversation_id, k.answered_at.is_(None), k.ended_at.is_(None),
                   k.started_at == c.waiting_since, c.status != "resolved")
            .order_by(k.id.desc()).limit(1)
        ).first()
        if row is None:
            return False
        near, due = deadline(ClockStart(row.kind, row.channel_kind, row.priority, row.started_at,
                                        hours_for(conn, row.team_id), config(conn, "sla")))
        conn.execute(update(sla_clocks).where(k.id == row.id).values(priority=row.priority, near_at=near, due_at=due))
        set_due_times(conn, [(conversation_id, due if row.kind == "first" else None,
                              due if row.kind == "next" else None)])
        return True


def answer_clocks(conn: Connection, conversation_id: int, now: datetime) -> None:
    """An agent answered: the live clock of the conversation is met (or late), and the
    conversation's due times are cleared. Call it before the reply clears ``waiting_since``."""
    waiting = select(c.waiting_since).where(c.id == conversation_id).scalar_subquery()
    conn.execute(update(sla_clocks).where(k.conversation_id == conversation_id, k.answered_at.is_(None),
                                          k.started_at == waiting).values(answered_at=now))
    conn.execute(update(conversations).where(c.id == conversation_id)
                 .values(first_response_due=None, next_response_due=None))


def note_due(engine: Engine, now: datetime | None = None) -> tuple[list[int], list[int]]:
    """Write an ``sla.near_breach`` event for each live clock past its near-breach time and an
    ``sla.breached`` event for each past its due time, each once per clock (the mark and its event
    in one transaction; of two sweeps at once, one marks a clock, the other's conditional update
    skips it). A clock found whose wait
    ended unanswered (the conversation resolved, or its wait restarted) is ended instead. Returns
    the conversation ids noted (near, breached)."""
    now = now or utcnow()
    noted: tuple[list[int], list[int]] = ([], [])
    for mark, when, type_, out in ((k.near_noted_at, k.near_at, "sla.near_breach", noted[0]),
                                   (k.breached_at, k.due_at, "sla.breached", noted[1])):
        with engine.begin() as conn:
            rows = conn.execute(  # from the partial index of the clocks still to note
                select(k.id, k.conversation_id, k.kind, k.started_at, k.due_at, c.status, c.waiting_since)
                .join(conversations, c.id == k.conversation_id)
                .where(k.answered_at.is_(None), k.ended_at.is_(None), mark.is_(None), when <= now)
                .order_by(when).limit(500)
            ).all()
            ended = {r.id for r in rows if r.status == "resolved" or r.waiting_since != r.started_at}
            if ended:
                conn.execute(update(sla_clocks).where(k.id.in_(ended), k.ended_at.is_(None)).values(ended_at=now))
            live = [r.id for r in rows if r.id not in ended]
            marked = conn.execute(
                update(sla_clocks).where(k.id.in_(live), mark.is_(None)).values({mark.key: now})
                .returning(k.id, k.conversation_id, k.kind, k.due_at)
            ).all() if live else []
            told = []
            for row in sorted(marked):
                told.append(event(type_, row.conversation_id, at=now, sla_kind=row.kind,
                                  due_at=row.due_at.isoformat()))
                out.append(row.conversation_id)
            append(conn, told)
    return noted


def clocks_between(engine: Engine, start: datetime, end: datetime) -> Sequence[Any]:
    """The clocks started in [start, end), for the report."""
    with engine.connect() as conn:
        return conn.execute(
            select(k.kind, k.channel_kind, k.priority, k.started_at, k.due_at, k.answered_at, k.ended_at,
                   k.near_noted_at, k.breached_at)
            .where(k.started_at >= start, k.started_at < end).order_by(k.id)
        ).all()
