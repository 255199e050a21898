"""channel infrastructure: files fetched from the provider later, unreachable contact identities

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_FETCH = sa.text("fetch_state = 'pending'")


def upgrade() -> None:
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ref", sa.Text(), nullable=True))
        # Every file stored so far came with its bytes: done.
        batch_op.add_column(sa.Column("fetch_state", sa.String(length=10), nullable=False, server_default="done"))
        batch_op.add_column(sa.Column("fetch_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("fetch_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("next_fetch_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(), nullable=True))
    op.create_index("ix_attachments_fetch", "attachments", ["next_fetch_at"],
                    postgresql_where=_FETCH, sqlite_where=_FETCH)
    with op.batch_alter_table("contact_identities", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unreachable_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("unreachable_since", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contact_identities", schema=None) as batch_op:
        batch_op.drop_column("unreachable_since")
        batch_op.drop_column("unreachable_reason")
    op.drop_index("ix_attachments_fetch", table_name="attachments")
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        for name in ("lease_until", "next_fetch_at", "fetch_attempts", "fetch_error", "fetch_state", "ref"):
            batch_op.drop_column(name)
