"""Small helpers for writing the same SQL on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table
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
