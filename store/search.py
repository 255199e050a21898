"""Search over messages and contacts, within what the agent may see.

What an agent types is parsed here, once, into terms: words, and "quoted phrases"; the last word
matches as a prefix while the agent is still typing it (no space after it). Nothing the agent
types is ever syntax: each term becomes a quoted literal of the database's query language, so
quotes, colons, ``& | ! * ( ) -``, NUL or SQL fragments find text (or nothing), never an error.

The two databases search differently, and this module owns the difference:

- PostgreSQL: ``to_tsvector('simple', ...)`` over GIN expression indexes (``ix_messages_search``
  on the text, ``ix_contacts_search`` on the SQL function ``contact_search_text``: name, email
  whole and in parts, phone as written and as digits alone); the 'simple' configuration lowercases
  and never stems, so a word in any language matches itself, accents and all. Each term is a
  quoted ``to_tsquery`` literal, which PostgreSQL's parser splits as it split the text (an email
  or ``ORD-12`` stays one lexeme with its parts); terms are ANDed.
- SQLite: the FTS5 tables ``messages_fts`` and ``contacts_fts`` (external content, kept in step by
  triggers; tokenizer unicode61 without removing diacritics, as PostgreSQL). Each term is an FTS5
  string of its word tokens (a phrase), ``*`` after the last for a prefix. A later migration that
  rebuilds ``messages`` or ``contacts`` on SQLite (Alembic's batch mode copies the table) drops
  their triggers with the old table: it must make them again (see migration 0007).

Who may see what is ``store.conversations.visible_to`` (the SQL form of ``router.access``): a
message is found only in a conversation the agent may see, a contact only with their newest such
conversation. Private notes are found like any message of a conversation one sees.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from sqlalchemy import Engine, column, func, literal_column, select, table
from sqlalchemy.sql.elements import ColumnElement

from store.conversations import visible_to
from store.dialect import is_postgres
from store.sql import clean, contacts, conversations, messages

# The FTS5 tables (and their shadow tables, named after them): SQLite only, outside the models.
FTS_TABLES = ("messages_fts", "contacts_fts")
MAX_QUERY = 200  # characters an agent may search for; longer answers 422

_WORD = re.compile(r"[^\W_]+")  # a token, as FTS5's unicode61 splits text
_TERM = re.compile(r'"([^"]*)("?)|(\S+)')
_SNIPPET = 160  # characters of text around the first match


def is_search_table(name: str) -> bool:
    """Whether ``name`` is a table of SQLite's full-text search (the FTS5 tables and theirs)."""
    return any(name == fts or name.startswith(fts + "_") for fts in FTS_TABLES)


@dataclasses.dataclass(frozen=True, slots=True)
class Term:
    """A word or a quoted phrase the agent typed; ``prefix``: it may be the start of a word."""

    text: str
    prefix: bool = False

    @property
    def words(self) -> list[str]:
        return _WORD.findall(self.text)


def parse(query: str) -> list[Term]:
    """The terms of ``query``: "quoted phrases" (an unclosed quote runs to the end) and words,
    each with something to find in it; the last word, unless followed by a space or closing a
    phrase, as a prefix."""
    query = clean(query) or ""
    terms: list[Term] = []
    for found in _TERM.finditer(query):
        phrase, closed, word = found.groups()
        text = word if word is not None else phrase
        if _WORD.search(text):
            last = found.end() == len(query)
            terms.append(Term(text, prefix=last and not closed))
    return terms


def tsquery(terms: list[Term]) -> str:
    """``terms`` as a PostgreSQL ``to_tsquery`` text: quoted literals ANDed, ``:*`` for a prefix."""
    quoted = ("'" + t.text.replace("\\", "\\\\").replace("'", "''") + "'" + (":*" if t.prefix else "")
              for t in terms)
    return " & ".join(quoted)


def fts5_query(terms: list[Term]) -> str:
    """``terms`` as an FTS5 query: each term the string of its tokens (a phrase), ``*`` for a
    prefix; ANDed. Tokens hold letters and digits only, so no quote can close a string early."""
    return " ".join('"' + " ".join(t.words) + '"' + ("*" if t.prefix else "") for t in terms)


def _matching(engine: Engine, kind: str, terms: list[Term]) -> ColumnElement[bool]:
    """A WHERE clause: the ``kind`` ("messages" or "contacts") row matches ``terms``."""
    simple = literal_column("'simple'")
    if is_postgres(engine):
        query = func.to_tsquery(simple, tsquery(terms))
        if kind == "messages":
            return func.to_tsvector(simple, messages.c.text).op("@@")(query)
        c = contacts.c
        return func.to_tsvector(simple, func.contact_search_text(c.name, c.email, c.phone)).op("@@")(query)
    fts = table(f"{kind}_fts", column("rowid"))
    found = select(fts.c.rowid).where(literal_column(fts.name).op("MATCH")(fts5_query(terms)))
    return (messages.c.id if kind == "messages" else contacts.c.id).in_(found)


@dataclasses.dataclass(frozen=True, slots=True)
class MessageHit:
    conversation_id: int
    id: int
    snippet: str
    created_at: Any


@dataclasses.dataclass(frozen=True, slots=True)
class ContactHit:
    conversation_id: int  # the contact's newest conversation the agent may see
    id: int
    name: str | None
    email: str | None
    phone: str | None


RECENT_IDS = 20_000  # messages searched by a walk of the key before the word index is asked (find_messages)


def find_messages(engine: Engine, agent_id: int, *, admin: bool, terms: list[Term], limit: int,
                  before_id: int | None = None) -> tuple[list[MessageHit], bool]:
    """Messages matching ``terms`` in conversations the agent may see, newest first (ids below
    ``before_id``), at most ``limit``; and whether more follow."""
    if not terms:
        return [], False
    m = messages.c
    query = (select(m.id, m.conversation_id, m.created_at, m.text)
             .join(conversations, conversations.c.id == m.conversation_id)
             .where(_matching(engine, "messages", terms), visible_to(agent_id, admin=admin)))
    with engine.connect() as conn:
        top = before_id if before_id is not None else (conn.execute(select(func.max(m.id))).scalar() or 0) + 1
        # The newest RECENT_IDS messages first, walking the key down: quick when the words are common
        # (the page fills within a few hundred rows). Then, when it did not fill, the older ones by
        # the word index and a sort, ordered by an expression so PostgreSQL cannot walk the key: words
        # that rare match few rows, where a walk of the key would read every message (2.7 s at
        # 1,000,000 messages for two words never written together, bench.inbox).
        rows = conn.execute(query.where(m.id < top, m.id >= top - RECENT_IDS)
                            .order_by(m.id.desc()).limit(limit + 1)).all()
        if len(rows) <= limit:
            rows += conn.execute(query.where(m.id < top - RECENT_IDS)
                                 .order_by((m.id + 0).desc()).limit(limit + 1 - len(rows))).all()
    hits = [MessageHit(r.conversation_id, r.id, snippet(r.text, terms), r.created_at) for r in rows[:limit]]
    return hits, len(rows) > limit


def find_contacts(engine: Engine, agent_id: int, *, admin: bool, terms: list[Term], limit: int,
                  before_id: int | None = None) -> tuple[list[ContactHit], bool]:
    """Contacts whose name, email or phone matches ``terms`` and who have a conversation the
    agent may see (with the newest of those), newest contact first (ids below ``before_id``), at
    most ``limit``; and whether more follow.

    The matching contacts are read newest first a chunk at a time, and each chunk's newest
    visible conversations in one query, until the page is full: a common name matches thousands
    of contacts, and looking up the conversations of all of them before keeping the newest twenty
    took 100 ms on 160,000 contacts (bench.inbox)."""
    if not terms:
        return [], False
    c, k = conversations.c, contacts.c
    # Ordered by an expression, not by the key: PostgreSQL would walk the key backwards computing
    # each contact's text (10 µs a row) until enough match, where the GIN index then a sort of the
    # few thousand matches of even a common name is quicker (3 ms against 34 on 160,000 contacts).
    matching = (select(k.id, k.name, k.email, k.phone).where(_matching(engine, "contacts", terms))
                .order_by((k.id + 0).desc()))
    hits: list[ContactHit] = []
    chunk = max(2 * limit, 50)
    with engine.connect() as conn:
        while len(hits) <= limit:
            rows = conn.execute((matching if before_id is None else matching.where(k.id < before_id))
                                .limit(chunk)).all()
            if not rows:
                break
            newest = dict(conn.execute(
                select(c.contact_id, func.max(c.id)).where(c.contact_id.in_([r.id for r in rows]),
                                                           visible_to(agent_id, admin=admin))
                .group_by(c.contact_id)).all())
            hits += [ContactHit(newest[r.id], r.id, r.name, r.email, r.phone) for r in rows if r.id in newest]
            if len(rows) < chunk:
                break
            before_id, chunk = rows[-1].id, chunk * 4
    return hits[:limit], len(hits) > limit


def snippet(text: str, terms: list[Term]) -> str:
    """About :data:`_SNIPPET` characters of ``text`` around the first word that starts with one
    of the terms' words (its start when none is found as such), on one line."""
    words = sorted({w for t in terms for w in t.words}, key=len, reverse=True)
    match = re.search(r"(?<![^\W_])(?:" + "|".join(map(re.escape, words)) + ")", text, re.IGNORECASE) if words \
        else None
    start = 0
    if match and match.start() > _SNIPPET // 3:
        start = match.start() - _SNIPPET // 3
        space = text.find(" ", start, match.start())
        start = space + 1 if space != -1 else start
    end = min(len(text), start + _SNIPPET)
    if end < len(text):
        space = text.rfind(" ", start + _SNIPPET // 2, end)
        end = space if space != -1 else end
    shown = " ".join(text[start:end].split())
    return ("…" if start > 0 else "") + shown + ("…" if end < len(text) else "")
