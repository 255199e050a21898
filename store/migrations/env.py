"""Alembic environment: runs on the engine omnidesk hands it (see store.db.upgrade)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import store.models  # noqa: F401  (registers the tables)
from store.db import get_engine
from store.search import is_search_table

config = context.config
engine = config.attributes.get("engine") or get_engine()

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        # SQLite's full-text tables (migration 0007) are no model's: autogenerate leaves them be.
        include_name=lambda name, kind, _parent: not (kind == "table" and is_search_table(name or "")),
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
