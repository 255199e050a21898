"""attachments: when the sweep looks again at a pending fetch it has rung (store.fetches.due)

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attachments") as batch:
        batch.add_column(sa.Column("look_again_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attachments") as batch:
        batch.drop_column("look_again_at")
