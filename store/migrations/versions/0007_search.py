"""search: full-text indexes over messages and contacts, and indexes for the inbox's list

PostgreSQL: GIN expression indexes over ``to_tsvector('simple', ...)`` (no stemming: the texts are
in many languages). SQLite: FTS5 external-content tables ``messages_fts`` and ``contacts_fts``,
kept in step with their tables by triggers. The expressions and the tokenizer are those of
``store.search``, which reads them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 02:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# What a contact is found by: name, email (whole, and in its parts), phone (as written, and its
# digits alone).
_CONTACT_TEXT = """
CREATE FUNCTION contact_search_text(name text, email text, phone text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN
    coalesce(name, '') || ' ' || coalesce(email, '') || ' ' || translate(coalesce(email, ''), '@._+-', '     ')
    || ' ' || coalesce(phone, '') || ' ' || regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g')
"""

# SQLite: the same, but the tokenizer splits emails and phones itself; the phone's digits alone
# are added by the triggers (the FTS column holds more than contacts.phone; nothing reads it back).
_DIGITS = "replace(replace(replace(replace(replace(replace(coalesce({0}, ''), ' ', ''), '-', ''), '+', ''), " \
          "'(', ''), ')', ''), '.', '')"
_TOKENIZE = "tokenize = 'unicode61 remove_diacritics 0'"
_SQLITE = [
    f"CREATE VIRTUAL TABLE messages_fts USING fts5(text, content = 'messages', content_rowid = 'id', {_TOKENIZE})",
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN "
    "INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN "
    "INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN "
    "INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text); END",
    "INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')",
    f"CREATE VIRTUAL TABLE contacts_fts USING fts5(name, email, phone, content = 'contacts', "
    f"content_rowid = 'id', {_TOKENIZE})",
    "CREATE TRIGGER contacts_fts_insert AFTER INSERT ON contacts BEGIN "
    "INSERT INTO contacts_fts (rowid, name, email, phone) VALUES "
    f"(new.id, new.name, new.email, coalesce(new.phone, '') || ' ' || {_DIGITS.format('new.phone')}); END",
    "CREATE TRIGGER contacts_fts_delete AFTER DELETE ON contacts BEGIN "
    "INSERT INTO contacts_fts (contacts_fts, rowid, name, email, phone) VALUES "
    f"('delete', old.id, old.name, old.email, coalesce(old.phone, '') || ' ' || {_DIGITS.format('old.phone')}); END",
    "CREATE TRIGGER contacts_fts_update AFTER UPDATE OF name, email, phone ON contacts BEGIN "
    "INSERT INTO contacts_fts (contacts_fts, rowid, name, email, phone) VALUES "
    f"('delete', old.id, old.name, old.email, coalesce(old.phone, '') || ' ' || {_DIGITS.format('old.phone')}); "
    "INSERT INTO contacts_fts (rowid, name, email, phone) VALUES "
    f"(new.id, new.name, new.email, coalesce(new.phone, '') || ' ' || {_DIGITS.format('new.phone')}); END",
    "INSERT INTO contacts_fts (rowid, name, email, phone) SELECT id, name, email, "
    f"coalesce(phone, '') || ' ' || {_DIGITS.format('phone')} FROM contacts",
]
_POSTGRES = [
    "CREATE INDEX ix_messages_search ON messages USING gin (to_tsvector('simple', text))",
    _CONTACT_TEXT,
    "CREATE INDEX ix_contacts_search ON contacts USING gin (to_tsvector('simple', contact_search_text(name, email, "
    "phone)))",
]


def upgrade() -> None:
    bind = op.get_bind()
    for statement in _POSTGRES if bind.dialect.name == "postgresql" else _SQLITE:
        op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.drop_index("ix_contacts_search", table_name="contacts")
        op.drop_index("ix_messages_search", table_name="messages")
        op.execute("DROP FUNCTION contact_search_text")
        return
    for name in ("contacts_fts_update", "contacts_fts_delete", "contacts_fts_insert",
                 "messages_fts_update", "messages_fts_delete", "messages_fts_insert"):
        op.execute(f"DROP TRIGGER {name}")
    op.execute("DROP TABLE contacts_fts")
    op.execute("DROP TABLE messages_fts")
