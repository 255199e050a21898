"""Small helpers for writing the same SQL on SQLite and PostgreSQL."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite

from store import models

channels: Table = models.Channel.__table__  # type: ignore[assignment]
contacts: Table = models.Contact.__table__  # type: ignore[assignment]
identities: Table = models.ContactIdentity.__table__  # type: ignore[assignment]
conversations: Table = models.Conversation.__table__  # type: ignore[assignment]
participants: Table = models.ConversationParticipant.__table__  # type: ignore[assignment]
messages: Table = models.Message.__table__  # type: ignore[assignment]
attachments: Table = models.Attachment.__table__  # type: ignore[assignment]
agents: Table = models.Agent.__table__  # type: ignore[assignment]
agent_teams: Table = models.AgentTeam.__table__  # type: ignore[assignment]
agent_languages: Table = models.AgentLanguage.__table__  # type: ignore[assignment]
assignments: Table = models.Assignment.__table__  # type: ignore[assignment]
tokens: Table = models.ApiToken.__table__  # type: ignore[assignment]
teams: Table = models.Team.__table__  # type: ignore[assignment]


def insert_ignore(conn: Connection, table: Table, conflict: list[str], **where: Any) -> Any:
    """``INSERT ... ON CONFLICT (conflict) DO NOTHING`` for the connection's dialect."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing(index_elements=conflict, **where)


def clean(text: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL characters; customers' bytes sometimes do."""
    if text is None or "\x00" not in text:
        return text
    return text.replace("\x00", "\ufffd")


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
    if conn.dialect.name != "postgresql":
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
