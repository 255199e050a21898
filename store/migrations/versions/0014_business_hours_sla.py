"""business hours per team, SLA clocks, reassignment and acknowledgement marks, shop config

Revision ID: 0014
Revises: 0012
Create Date: 2026-11-29 05:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None

# The clocks the sweep still has to note (near a breach, breached): small, whatever the history.
_NEAR = sa.text("answered_at IS NULL AND ended_at IS NULL AND near_noted_at IS NULL")
_DUE = sa.text("answered_at IS NULL AND ended_at IS NULL AND breached_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hours", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("reassign_after", sa.Float(), nullable=True))
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_response_due", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("next_response_due", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("reassigned_wait", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("acked_at", sa.DateTime(), nullable=True))
    op.create_table(
        "sla_clocks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("conversation_id", sa.Integer(), sa.ForeignKey("conversations.id"), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("channel_kind", sa.String(length=20), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("near_at", sa.DateTime(), nullable=True),
        sa.Column("due_at", sa.DateTime(), nullable=True),
        sa.Column("answered_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("near_noted_at", sa.DateTime(), nullable=True),
        sa.Column("breached_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_sla_clocks_conversation_id", "sla_clocks", ["conversation_id"])
    op.create_index("ix_sla_clocks_near", "sla_clocks", ["near_at"], postgresql_where=_NEAR, sqlite_where=_NEAR)
    op.create_index("ix_sla_clocks_due", "sla_clocks", ["due_at"], postgresql_where=_DUE, sqlite_where=_DUE)
    op.create_index("ix_sla_clocks_started", "sla_clocks", ["started_at"])
    op.create_table(
        "shop_config",
        sa.Column("key", sa.String(length=40), primary_key=True),
        sa.Column("value", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("shop_config")
    op.drop_index("ix_sla_clocks_started", table_name="sla_clocks")
    op.drop_index("ix_sla_clocks_due", table_name="sla_clocks")
    op.drop_index("ix_sla_clocks_near", table_name="sla_clocks")
    op.drop_index("ix_sla_clocks_conversation_id", table_name="sla_clocks")
    op.drop_table("sla_clocks")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("acked_at")
        batch_op.drop_column("reassigned_wait")
        batch_op.drop_column("next_response_due")
        batch_op.drop_column("first_response_due")
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.drop_column("reassign_after")
        batch_op.drop_column("hours")
