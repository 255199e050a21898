"""index conversations by thread key, for the reopen rule

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 10:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_conversations_thread", "conversations", ["channel_id", "thread_key"])


def downgrade() -> None:
    op.drop_index("ix_conversations_thread", table_name="conversations")
