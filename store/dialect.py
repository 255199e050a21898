"""Where SQLite and PostgreSQL differ, in one place: row locks, the autocommit statement, the
inserts (``ON CONFLICT``, arrays), the writer of routing picks and the writer of events, and the
strings of a JSON array in SQL (``strings_outside``). Everything else in the store writes one form
of SQL for both.

SQLite has no row locks: every write transaction takes the database's write lock at BEGIN
(``BEGIN IMMEDIATE``, see ``store.db``), so one writer at a time is what the row locks of
PostgreSQL give, and the lock clauses here are no-ops there.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Boolean,
    Connection,
    Engine,
    Select,
    String,
    Table,
    bindparam,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement

from store import models

Query = TypeVar("Query", bound=Select[Any])


def is_postgres(bind: Connection | Engine) -> bool:
    """Whether ``bind`` talks to PostgreSQL (else SQLite, the embedded default)."""
    return bind.dialect.name == "postgresql"


def for_update(bind: Connection | Engine, query: Query, *, of: Table, key_share: bool = False,
               skip_locked: bool = False) -> Query:
    """``query`` locking the rows of ``of`` it reads, on PostgreSQL. ``key_share``: FOR NO KEY
    UPDATE, which does not stop other transactions from inserting rows that refer to these (a
    message added to a locked conversation). ``skip_locked``: rows another transaction holds are
    left out instead of waited for. On SQLite the query as it is."""
    if not is_postgres(bind):
        return query
    return query.with_for_update(of=of, key_share=key_share, skip_locked=skip_locked)


@contextmanager
def single_statement(engine: Engine) -> Iterator[Connection]:
    """A connection for one statement committed on its own: on PostgreSQL in autocommit mode (no
    BEGIN and COMMIT round trips), on SQLite in a transaction of its own (its write lock taken at
    BEGIN, as every write here)."""
    if is_postgres(engine):
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            yield conn
    else:
        with engine.begin() as conn:
            yield conn


def insert_ignore(conn: Connection, table: Table, conflict: list[str], **where: Any) -> Any:
    """``INSERT ... ON CONFLICT (conflict) DO NOTHING`` for the connection's dialect."""
    dialect = postgresql if is_postgres(conn) else sqlite
    return dialect.insert(table).on_conflict_do_nothing(index_elements=conflict, **where)


def insert_many(
    conn: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    *,
    conflict: list[str] | None = None,
    returning: tuple[str, ...] = (),
    in_order: bool = False,
) -> list[Any]:
    """Insert ``rows`` (all with the same keys) in one statement; with ``conflict``, rows that
    collide with a stored one are skipped (``ON CONFLICT DO NOTHING``). Returns the ``returning``
    columns of the rows inserted; ``in_order``: in the order of ``rows`` (all must be inserted).

    On PostgreSQL the rows travel as one array a column, ``INSERT ... SELECT FROM unnest(...)``:
    the statement's text does not depend on the number of rows, so it is parsed and planned once
    and prepared by psycopg, where a multi-row VALUES is a new statement for every batch size
    (and, past 50 parameters, parsed again by psycopg every time). Elsewhere SQLAlchemy's
    multi-row insert does the same job.
    """
    if not rows:
        return []
    names = tuple(rows[0])
    if not is_postgres(conn):
        stmt = insert_ignore(conn, table, conflict) if conflict else table.insert()
        if returning:
            stmt = stmt.returning(*(table.c[n] for n in returning), sort_by_parameter_order=in_order)
        result = conn.execute(stmt, rows)
        return result.all() if returning else []
    stmt = _unnest_insert(table, names, tuple(conflict or ()), returning, in_order)
    result = conn.execute(stmt, {n: [row[n] for row in rows] for n in names})
    if not returning:
        return []
    found = result.all()
    if in_order:  # ids come from a sequence, drawn in the order the rows are selected
        found.sort(key=lambda row: row[0])
    return found


@functools.lru_cache(maxsize=64)
def _unnest_insert(table: Table, names: tuple[str, ...], conflict: tuple[str, ...], returning: tuple[str, ...],
                   in_order: bool) -> Any:
    arrays = func.unnest(*(bindparam(n, type_=postgresql.ARRAY(table.c[n].type)) for n in names))
    source = arrays.table_valued(*names, with_ordinality="position" if in_order else None).render_derived("rows")
    query = select(*(source.c[n] for n in names))
    if in_order:
        query = query.order_by(source.c.position)
    stmt = postgresql.insert(table).from_select(list(names), query)
    if conflict:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(conflict))
    if returning:
        stmt = stmt.returning(*(table.c[n] for n in returning))
    return stmt


# Events (store.events): written in the transaction of their change. Nothing here orders the
# writers' commits (that would serialise them): on PostgreSQL a transaction may commit after one
# that took a later id, and readers wait for such gaps (store.events.Reader). The connection's
# info remembers its engine, for the wake-ups rung once the transaction is over (store.wakeups).
WROTE_EVENTS = "omnidesk.wrote_events"
_EVENTS = text("""
INSERT INTO events (created_at, type, conversation_id, agent_id, data)
SELECT e.created_at, e.type, e.conversation_id, e.agent_id, CAST(e.data AS json)
FROM unnest(CAST(:created_at AS timestamp[]), CAST(:type AS varchar[]), CAST(:conversation_id AS integer[]),
                  CAST(:agent_id AS integer[]), CAST(:data AS text[]))
     WITH ORDINALITY AS e(created_at, type, conversation_id, agent_id, data, position)
ORDER BY e.position
""")


def insert_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert event rows (created_at, type, conversation_id, agent_id, data) in one statement, in
    order, in the caller's transaction."""
    if not rows:
        return
    conn.info[WROTE_EVENTS] = conn.engine
    if not is_postgres(conn):
        conn.execute(_events.insert(), list(rows))
        return
    conn.execute(_EVENTS, {
        "created_at": [r["created_at"] for r in rows], "type": [r["type"] for r in rows],
        "conversation_id": [r["conversation_id"] for r in rows], "agent_id": [r["agent_id"] for r in rows],
        "data": [json.dumps(r["data"], separators=(",", ":")) for r in rows],
    })


def write_picks(
    conn: Connection,
    loads: Sequence[tuple[int, int, datetime]],
    picks: Sequence[tuple[int, int, datetime]],
    now: datetime,
    *,
    reason: str,
    by: int | None = None,
    over_capacity: bool = False,
    announce: bool = True,
) -> tuple[int, int, int]:
    """Write assignments: each agent of ``loads`` (agent id, conversations taken, last assigned
    at) takes its conversations' capacity, unless that would pass its capacity (and
    ``over_capacity`` is false); each conversation of ``picks`` (conversation id, agent id, at)
    still open and unassigned gets its assignee and stops needing routing; each one moved is
    logged with ``reason`` and ``by``. Returns how many agents, conversations and log rows were
    written, for the caller to check against what it asked. ``announce``: each conversation moved
    also gets its ``conversation.updated`` event (``assignee_id``, ``reason``).

    On PostgreSQL one statement whatever the number of picks (the three writes as CTEs over
    arrays); on SQLite one prepared statement a table, executed for each row."""
    if is_postgres(conn):
        if announce:
            conn.info[WROTE_EVENTS] = conn.engine
        row = conn.execute(_PICKS_ANNOUNCED if announce else _PICKS, {
            "agent": [x[0] for x in loads], "taken": [x[1] for x in loads], "at": [x[2] for x in loads],
            "conversation": [x[0] for x in picks], "assignee": [x[1] for x in picks],
            "stamp": [x[2] for x in picks], "now": now, "reason": reason, "by": by, "over": over_capacity,
        }).one()
        return row[0], row[1], row[2]
    got = conn.execute(_AGENTS_BY_ROW, [{"agent": agent, "taken": taken, "at": at, "over": over_capacity}
                                        for agent, taken, at in loads]).rowcount
    moved = conn.execute(_CONVERSATIONS_BY_ROW, [{"conversation": conv, "agent": agent, "now": now}
                                                 for conv, agent, _ in picks]).rowcount
    logged = len(insert_many(conn, _assignments, [
        {"conversation_id": conv, "agent_id": agent, "by_agent_id": by, "reason": reason, "created_at": at}
        for conv, agent, at in picks], returning=("id",)))
    if announce:  # every pick: should one not have moved, the caller rolls the whole transaction back
        insert_events(conn, [{"created_at": at, "type": "conversation.updated", "conversation_id": conv,
                              "agent_id": None, "data": {"assignee_id": agent, "reason": reason}}
                             for conv, agent, at in picks])
    return got, moved, logged


# The three writes of picks in one statement (PostgreSQL). The CTEs see one snapshot and touch
# different tables; the assignments are logged for the conversations actually moved.
_PICKS_SQL = """
WITH took AS (
  UPDATE agents SET active_count = agents.active_count + t.taken, last_assigned_at = t.at
  FROM unnest(CAST(:agent AS integer[]), CAST(:taken AS integer[]), CAST(:at AS timestamp[])) AS t(agent, taken, at)
  WHERE agents.id = t.agent AND (agents.active_count + t.taken <= agents.capacity OR CAST(:over AS boolean))
  RETURNING agents.id
), moved AS (
  UPDATE conversations SET assignee_id = p.agent, last_assignee_id = p.agent, needs_routing = false,
                           route_error = NULL, route_attempts = 0, updated_at = CAST(:now AS timestamp)
  FROM unnest(CAST(:conversation AS integer[]), CAST(:assignee AS integer[]), CAST(:stamp AS timestamp[]))
       AS p(conversation, agent, stamp)
  WHERE conversations.id = p.conversation AND conversations.status = 'open' AND conversations.assignee_id IS NULL
  RETURNING conversations.id, p.agent, p.stamp
), logged AS (
  INSERT INTO assignments (conversation_id, agent_id, by_agent_id, reason, created_at)
  SELECT id, agent, CAST(:by AS integer), CAST(:reason AS varchar), stamp FROM moved
  RETURNING id
)
SELECT (SELECT count(*) FROM took), (SELECT count(*) FROM moved), (SELECT count(*) FROM logged)
"""
# The same, with each conversation moved announced by its event (see insert_events).
_PICKS = text(_PICKS_SQL)
_PICKS_ANNOUNCED = text(_PICKS_SQL.replace("), logged AS (", """), told AS (
  INSERT INTO events (created_at, type, conversation_id, data)
  SELECT stamp, 'conversation.updated', id,
         json_build_object('assignee_id', agent, 'reason', CAST(:reason AS varchar))
  FROM moved ORDER BY id
  RETURNING id
), logged AS ("""))

_agents: Table = models.Agent.__table__  # type: ignore[assignment]
_conversations: Table = models.Conversation.__table__  # type: ignore[assignment]
_assignments: Table = models.Assignment.__table__  # type: ignore[assignment]
_events: Table = models.Event.__table__  # type: ignore[assignment]
_AGENTS_BY_ROW = (
    update(_agents)
    .where(_agents.c.id == bindparam("agent"),
           or_(_agents.c.active_count + bindparam("taken") <= _agents.c.capacity, bindparam("over", type_=Boolean)))
    .values(active_count=_agents.c.active_count + bindparam("taken"), last_assigned_at=bindparam("at"))
)
_CONVERSATIONS_BY_ROW = (
    update(_conversations)
    .where(_conversations.c.id == bindparam("conversation"), _conversations.c.status == "open",
           _conversations.c.assignee_id.is_(None))
    .values(assignee_id=bindparam("agent"), last_assignee_id=bindparam("agent"), needs_routing=False,
            route_error=None, route_attempts=0, updated_at=bindparam("now"))
)


class strings_outside(ColumnElement[bool]):
    """SQL: the JSON array ``column`` holds a string not among ``allowed`` (a conversation needs a
    skill the agent lacks). A NULL column, JSON ``null`` or an empty array holds none. Written
    for each database below (SQLite ``json_each``, PostgreSQL ``json_array_elements_text``)."""

    inherit_cache = False
    type = Boolean()

    def __init__(self, column: ColumnElement[Any], allowed: Sequence[str]) -> None:
        self.column = column
        self.allowed = tuple(allowed)


def _outside(element: strings_outside, compiler: Any, source: str, string: str, **kw: Any) -> str:
    binds = ", ".join(compiler.process(literal(value, String()), **kw) for value in element.allowed)
    unknown = f" AND s.value NOT IN ({binds})" if binds else ""
    return f"EXISTS (SELECT 1 FROM {source} WHERE {string}{unknown})"


@compiles(strings_outside, "sqlite")
def _outside_sqlite(element: strings_outside, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return _outside(element, compiler, f"json_each({column}) AS s", "s.type = 'text'", **kw)


@compiles(strings_outside, "postgresql")
def _outside_postgresql(element: strings_outside, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    array = f"CASE WHEN json_typeof({column}) = 'array' THEN {column} END"
    return _outside(element, compiler, f"json_array_elements_text({array}) AS s(value)", "s.value IS NOT NULL", **kw)
_DUE_TIMES = text("""
  UPDATE conversations SET first_response_due = d.first, next_response_due = d.next
  FROM unnest(CAST(:cid AS integer[]), CAST(:first AS timestamp[]), CAST(:next AS timestamp[])) AS d(cid, first, next)
  WHERE conversations.id = d.cid
""")


def set_due_times(conn: Connection, rows: Sequence[tuple[int, datetime | None, datetime | None]]) -> None:
    """Set conversations' SLA due times, (id, first response due, next response due) each, in one
    statement on PostgreSQL (the rows as arrays); elsewhere one UPDATE executed for all rows."""
    if not rows:
        return
    if is_postgres(conn):
        conn.execute(_DUE_TIMES, {"cid": [r[0] for r in rows], "first": [r[1] for r in rows],
                                  "next": [r[2] for r in rows]})
        return
    c = models.Conversation.__table__.c  # type: ignore[attr-defined]
    conn.execute(update(models.Conversation.__table__).where(c.id == bindparam("cid"))  # type: ignore[arg-type]
                 .values(first_response_due=bindparam("first"), next_response_due=bindparam("next")),
                 [{"cid": cid, "first": first, "next": next_} for cid, first, next_ in rows])
