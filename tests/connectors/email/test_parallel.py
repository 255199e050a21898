"""Parsing in the process pool: the same events as in the calling thread, in order; a broken pool
costs nothing but speed; and a pipelined poll against a real Dovecot (the next batch is fetched and
parsed before the current one is handed over) still acknowledges only what was committed."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.email import parallel
from tests.connectors.email.test_imap import connector, flags, mail
from tests.fakes.dovecot import Dovecot

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.eml"))
OPTIONS = parallel.Options(own_addresses=("support@shop.example",), max_attachment_bytes=25 * 1024 * 1024,
                           allow_remote_images=False)
ARRIVED = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)


def items() -> list[parallel.Fetched]:
    found = [parallel.Fetched(n, path.read_bytes(), ARRIVED) for n, path in enumerate(CORPUS, 1)]
    found.append(parallel.Fetched(len(found) + 1, b"\x00\xff garbage without headers \x00" * 50, None))
    assert len(found) >= parallel.MIN_POOLED
    return found


def _crash() -> None:
    raise RuntimeError("this worker cannot start")


@pytest.fixture
def broken_pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A real pool whose workers die as they start."""
    import multiprocessing

    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_crash)
    monkeypatch.setattr(parallel, "_pool", pool)
    yield
    pool.shutdown(wait=False, cancel_futures=True)


def test_the_pool_gives_what_the_calling_thread_gives(caplog: pytest.LogCaptureFixture) -> None:
    fetched = items()
    parsing = parallel.submit(fetched, OPTIONS)
    assert parallel._pool is not None  # large enough for the pool
    events = parsing.result()
    assert "parsing" not in caplog.text  # parsed there, not here after a failure
    assert events == parallel.parse_fetched(fetched, OPTIONS)
    assert [e.raw for e in events] == [i.raw for i in fetched]
    assert events[-1].parse_error or events[-1].sender.external_id == "unknown"  # kept, not lost


def test_small_batches_stay_in_the_calling_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "_pool", None)
    fetched = items()[: parallel.MIN_POOLED - 1]
    assert parallel.submit(fetched, OPTIONS).result() == parallel.parse_fetched(fetched, OPTIONS)
    assert parallel._pool is None  # no process was started for them


def test_a_broken_pool_is_replaced_and_costs_no_message(broken_pool: None, caplog: pytest.LogCaptureFixture) -> None:
    broken = parallel._pool
    fetched = items()
    assert parallel.submit(fetched, OPTIONS).result() == parallel.parse_fetched(fetched, OPTIONS)
    assert "parsing them here" in caplog.text or "parsing here" in caplog.text
    assert parallel._pool is not broken  # the next batch gets a new pool


def test_after_shutdown_parsing_stays_in_the_calling_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process is stopping; a poll still running parses without starting a pool. (A pool
    started then would hold the exit: multiprocessing's forkserver, which shutdown() stops and waits
    for, ends only once every process it forked has ended.)"""
    from multiprocessing import forkserver

    if parallel._pool is not None:  # an earlier test's: ended, or this test's shutdown would wait for it
        parallel._pool.shutdown(wait=True)
        parallel._pool = None
    monkeypatch.setattr(parallel, "_ended", False, raising=False)
    fetched = items()
    assert parallel.submit(fetched, OPTIONS).result() == parallel.parse_fetched(fetched, OPTIONS)
    assert parallel._pool is not None  # a batch this large goes to the pool while running
    parallel.shutdown()
    assert parallel.submit(fetched, OPTIONS).result() == parallel.parse_fetched(fetched, OPTIONS)
    assert parallel._pool is None
    assert forkserver._forkserver._forkserver_pid is None  # none started again


def test_a_pipelined_poll_acknowledges_only_what_was_committed(
    dovecot: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    user, _ = dovecot.new_mailbox()
    size = parallel.MIN_POOLED
    for n in range(2 * size + 3):
        dovecot.append(user, mail(n, dated=n % 7 != 0), date=ARRIVED)  # some without a Date: INTERNALDATE
    conn = connector(dovecot, user, batch_size=size, import_since_days=None)
    polling = conn.poll(None)
    first = next(polling)  # the second batch is being parsed meanwhile; nothing acknowledged yet
    assert [e.external_id for e in first.events] == [f"<q{n}@example.com>" for n in range(size)]
    assert first.cursor["folders"]["INBOX"]["last_uid"] == size
    assert first.events[0].sent_at == ARRIVED and first.events[1].sent_at != ARRIVED
    assert all(b"\\Seen" not in f for f in flags(dovecot, user).values())
    second = next(polling)  # resuming acknowledged the first batch only
    seen = {k for k, f in flags(dovecot, user).items() if b"\\Seen" in f}
    assert seen == {f"<q{n}@example.com>" for n in range(size)}
    assert [e.external_id for e in second.events] == [f"<q{n}@example.com>" for n in range(size, 2 * size)]
    assert second.cursor["folders"]["INBOX"]["last_uid"] == 2 * size
    polling.close()  # the worker died before committing the second batch: it stays unacknowledged
    assert len([f for f in flags(dovecot, user).values() if b"\\Seen" in f]) == size

    rest = list(conn.poll(first.cursor))  # the next poll starts from the cursor committed with the first
    assert [e.external_id for b in rest for e in b.events] == [f"<q{n}@example.com>" for n in range(size, 2 * size + 3)]
    assert [b.cursor["folders"]["INBOX"]["last_uid"] for b in rest] == [2 * size, 2 * size + 3]
    assert all(b"\\Seen" in f for f in flags(dovecot, user).values())
    assert "parsing" not in caplog.text  # the pooled batches were parsed in the pool
