"""Why storing failed, told apart by kind, because each kind asks for a different answer:

    Exception
     ├── conflict: a deadlock or a serialization failure with a concurrent writer (SQLSTATE
     │   40P01, 40001). Nothing is wrong with the messages or the connection: the transaction
     │   is tried once more; a batch that conflicts again stores its messages one by one, in
     │   transactions too small to deadlock with each other. Never a bare record.
     ├── connection: OperationalError, InterfaceError, any DBAPIError that invalidated its
     │   connection (a dropped connection, a restarted server, a locked SQLite file).
     │   The message is fine: retry once on a fresh connection, else raise, so the provider
     │   retries the webhook and a poller keeps its cursor. Never a bare record.
     ├── content refusal: IntegrityError (our duplicates never raise: they are ON CONFLICT DO
     │   NOTHING), DataError, UnicodeEncodeError (text that is not valid Unicode, refused by the
     │   driver). This message cannot be stored as parsed: a bare record keeps its raw source.
     └── anything else: a fault of ours; raised.

What is logged or kept names the kind and the exception's type, never its text: a database
error's text holds the SQL and its parameters, the customer's words among them.
"""

from __future__ import annotations

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError

from connectors.base import Event, Identity, InboundMessage
from store.inbound.rows import ID_LENGTH

# The refusals of a message's content, each with the words an admin reads on the bare record.
REFUSALS: tuple[tuple[type[Exception], str], ...] = (
    (IntegrityError, "a constraint"),
    (DataError, "a value it cannot hold"),
    (UnicodeEncodeError, "text that is not valid Unicode"),
)


# PostgreSQL's "try the transaction again" states: deadlock_detected, serialization_failure.
CONFLICTS = frozenset({"40P01", "40001"})


def is_conflict(exc: BaseException) -> bool:
    """The transaction lost to a concurrent one (a deadlock): worth one more try, and a batch
    then goes one message at a time."""
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in CONFLICTS


def is_connection_error(exc: BaseException) -> bool:
    """The connection failed, not the message: worth one more try on a fresh connection."""
    if is_conflict(exc):
        return False
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def is_content_refusal(exc: BaseException) -> bool:
    """The database (or its driver) refused what the message holds: storing it again as parsed
    would fail again."""
    if is_connection_error(exc):
        return False
    return any(isinstance(exc, kind) for kind, _ in REFUSALS)


def refusal_note(exc: BaseException) -> str:
    """The parse error of a bare record: the kind of refusal, without SQL, parameters or text."""
    why = next((why for kind, why in REFUSALS if isinstance(exc, kind)), "its content")
    return f"the database refused this message ({type(exc).__name__}: {why}); its raw source is kept"


def bare_record(event: InboundMessage, exc: BaseException) -> InboundMessage:
    """What is kept of a message the database refused: its ids, its sender's id and thread (so it
    lands in the customer's conversation), its raw source and why; no text, no attachments."""
    return InboundMessage(
        external_id=_valid(event.external_id)[:ID_LENGTH],
        sender=Identity(external_id=_valid(event.sender.external_id)[:ID_LENGTH] or "unknown"),
        text="",
        thread_key=_valid(event.thread_key)[:ID_LENGTH] or None,
        parse_error=refusal_note(exc),
        raw=event.raw,
    )


def describe(event: Event) -> str:
    """An event for a log line: its external id (cut short, valid Unicode), never its text."""
    name = getattr(event, "external_id", None) or getattr(event, "sender_external_id", "")
    return repr(_valid(name)[:80])


def _valid(text: str | None) -> str:
    """``text`` as valid UTF-8 (lone surrogates replaced): an id the driver refused must not
    make the bare record fail too."""
    if not text:
        return ""
    return text.encode("utf-8", "replace").decode("utf-8")
