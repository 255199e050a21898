"""The tables as SQLAlchemy core sees them, and small helpers for writing SQL (the dialect's
differences are in ``store.dialect``)."""

from __future__ import annotations

from sqlalchemy import Table

from store import models

# The store's writers import these from here; their dialect switch lives in store.dialect.
from store.dialect import insert_ignore as insert_ignore
from store.dialect import insert_many as insert_many

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
reads: Table = models.ConversationRead.__table__  # type: ignore[assignment]
canned: Table = models.CannedResponse.__table__  # type: ignore[assignment]
sla_clocks: Table = models.SlaClock.__table__  # type: ignore[assignment]
shop_config: Table = models.ShopConfig.__table__  # type: ignore[assignment]
tags: Table = models.ConversationTag.__table__  # type: ignore[assignment]
rules: Table = models.RoutingRule.__table__  # type: ignore[assignment]
visitors: Table = models.WebchatVisitor.__table__  # type: ignore[assignment]


def clean(text: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL characters; customers' bytes sometimes do."""
    if text is None or "\x00" not in text:
        return text
    return text.replace("\x00", "\ufffd")
