"""routing core: capacity per group of channel kinds, skills, team policies and settings

Revision ID: 0012
Revises: 0010
Create Date: 2026-11-29 05:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.add_column(sa.Column("policy", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("capacities", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("skill_wait_seconds", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("sticky_seconds", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("return_on_away", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("capacities", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("skills", sa.JSON(), nullable=True))
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("skills", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("skills_widened_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("skills_widened_at")
        batch_op.drop_column("skills")
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_column("skills")
        batch_op.drop_column("capacities")
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.drop_column("return_on_away")
        batch_op.drop_column("sticky_seconds")
        batch_op.drop_column("skill_wait_seconds")
        batch_op.drop_column("capacities")
        batch_op.drop_column("policy")
