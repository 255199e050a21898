"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine
from sqlmodel import SQLModel

import store.models  # noqa: F401  (registers the tables)
from store.search import is_search_table


def test_migrations_match_the_models(store_engine: Engine) -> None:
    with store_engine.connect() as conn:
        # SQLite's full-text tables are the migration's alone (no model describes a virtual table).
        context = MigrationContext.configure(conn, opts={
            "compare_type": True,
            "include_name": lambda name, kind, _parent: not (kind == "table" and is_search_table(name or "")),
        })
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == [], "the models changed without a migration: " + repr(differences)
