"""partial indexes for the queue, routing and delivery; no separate channel index on conversations

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_QUEUE = sa.text("status = 'open' AND assignee_id IS NULL")
_ROUTING = sa.text("needs_routing IS true")
_DELIVERY = sa.text("direction = 'out' AND status IN ('pending', 'sending')")


def upgrade() -> None:
    # (channel_id, open_key) and (channel_id, thread_key) both lead with the channel.
    op.drop_index("ix_conversations_channel_id", table_name="conversations")
    op.drop_index("ix_conversations_queue", table_name="conversations")
    op.create_index("ix_conversations_queue", "conversations", ["priority", "waiting_since"],
                    postgresql_where=_QUEUE, sqlite_where=_QUEUE)
    op.drop_index("ix_conversations_routing", table_name="conversations")
    op.create_index("ix_conversations_routing", "conversations", ["updated_at"],
                    postgresql_where=_ROUTING, sqlite_where=_ROUTING)
    op.drop_index("ix_messages_delivery", table_name="messages")
    op.create_index("ix_messages_delivery", "messages", ["next_attempt_at"],
                    postgresql_where=_DELIVERY, sqlite_where=_DELIVERY)


def downgrade() -> None:
    op.drop_index("ix_messages_delivery", table_name="messages")
    op.create_index("ix_messages_delivery", "messages", ["direction", "status", "next_attempt_at"])
    op.drop_index("ix_conversations_routing", table_name="conversations")
    op.create_index("ix_conversations_routing", "conversations", ["needs_routing", "updated_at"])
    op.drop_index("ix_conversations_queue", table_name="conversations")
    op.create_index("ix_conversations_queue", "conversations", ["status", "assignee_id", "priority", "waiting_since"])
    op.create_index("ix_conversations_channel_id", "conversations", ["channel_id"])
