"""inbox: read markers, canned responses, agents' locale and last heartbeat, list indexes

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locale", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False,
                                      server_default="en"))
        batch_op.add_column(sa.Column("last_seen_at", sa.DateTime(), nullable=True))

    op.create_table(
        "conversation_reads",
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("last_read_message_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"]),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"]),
        sa.PrimaryKeyConstraint("agent_id", "conversation_id"),
    )
    op.create_table(
        "canned_responses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shortcut", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["agents.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shortcut"),
    )
    op.create_index("ix_conversations_status", "conversations", ["status", "assignee_id"], unique=False)
    # Replaced by indexes that also give the order of a view's page (and a conversation's newest message).
    op.create_index("ix_conversations_assignee", "conversations", ["assignee_id", "id"], unique=False)
    op.drop_index("ix_conversations_assignee_id", table_name="conversations")
    op.create_index("ix_conversations_team", "conversations", ["team_id", "id"], unique=False)
    op.create_index("ix_messages_conversation", "messages", ["conversation_id", "id"], unique=False,
                    postgresql_include=["direction", "private"])
    op.drop_index("ix_messages_conversation_id", table_name="messages")


def downgrade() -> None:
    op.create_index("ix_messages_conversation_id", "messages", ["conversation_id"], unique=False)
    op.drop_index("ix_messages_conversation", table_name="messages")
    op.drop_index("ix_conversations_team", table_name="conversations")
    op.create_index("ix_conversations_assignee_id", "conversations", ["assignee_id"], unique=False)
    op.drop_index("ix_conversations_assignee", table_name="conversations")
    op.drop_index("ix_conversations_status", table_name="conversations")
    op.drop_table("canned_responses")
    op.drop_table("conversation_reads")
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_column("last_seen_at")
        batch_op.drop_column("locale")
