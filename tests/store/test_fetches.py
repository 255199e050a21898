"""Files the provider holds: stored pending with their message (alone and in a batch), claimed by
one worker at a time, moved to done or failed once, each move an event; the sweep's list of due
files. Both databases."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import Engine, select, update

from connectors.base import Attachment, Identity, InboundMessage, RemoteAttachment
from store import fetches
from store.channels import create_channel
from store.inbound import record_inbound
from store.models import utcnow
from store.sql import attachments
from tests.channels.remote import remote_kind  # noqa: F401 - fixture
from tests.support import assert_looks_again_after_half_the_wait

f = attachments.c
CONFIG = {"secret": "a-shared-secret-of-the-shop", "callback_url": "http://127.0.0.1:9/replies"}


def _message(n: int, *files: RemoteAttachment) -> InboundMessage:
    return InboundMessage(external_id=f"m{n}", sender=Identity(f"cust-{n}"), text=f"photo {n}",
                          thread_key=f"t{n}", remote_attachments=files,
                          attachments=(Attachment("note.txt", "text/plain", b"inline bytes"),))


def _rows(engine: Engine) -> list:  # type: ignore[type-arg]
    with engine.connect() as conn:
        return conn.execute(select(attachments).order_by(f.id)).all()


def _events(engine: Engine, type_: str) -> list:  # type: ignore[type-arg]
    from store.events import events

    with engine.connect() as conn:
        return conn.execute(select(events).where(events.c.type == type_).order_by(events.c.id)).all()


def test_a_batch_stores_remote_files_pending_beside_the_files_that_came(store_engine: Engine, remote_kind: str) -> None:  # noqa: F811
    channel_id = create_channel(store_engine, remote_kind, "files", CONFIG)
    one = RemoteAttachment("http://files/a", "a.png", "image/png", size=1234)
    two = RemoteAttachment("file-id-2", "b.pdf", "", size=None)
    results = record_inbound(store_engine, channel_id, [_message(1, one, two), _message(2), _message(3, one)])
    assert [len(r.fetches) for r in results] == [2, 0, 1]
    rows = {r.id: r for r in _rows(store_engine)}
    pending = [rows[i] for r in results for i in r.fetches]
    assert [(p.ref, p.filename, p.content_type, p.size, p.fetch_state, p.data) for p in pending] == [
        ("http://files/a", "a.png", "image/png", 1234, "pending", b""),
        ("file-id-2", "b.pdf", "application/octet-stream", 0, "pending", b""),
        ("http://files/a", "a.png", "image/png", 1234, "pending", b""),
    ]
    assert all(p.next_fetch_at is not None for p in pending)
    came = [r for r in rows.values() if r.id not in {p.id for p in pending}]
    assert [(r.data, r.fetch_state, r.ref) for r in came] == [(b"inline bytes", "done", None)] * 3
    # A redelivery stores nothing again and asks for no fetch.
    again = record_inbound(store_engine, channel_id, [_message(1, one, two)])
    assert again[0].duplicate and again[0].fetches == ()
    assert len(_rows(store_engine)) == 6


def test_one_claim_at_a_time_then_done_once_with_its_event(store_engine: Engine, remote_kind: str) -> None:  # noqa: F811
    channel_id = create_channel(store_engine, remote_kind, "files", CONFIG)
    [recorded] = record_inbound(store_engine, channel_id, [_message(1, RemoteAttachment("r", "a.png", "image/png"))])
    [attachment_id] = recorded.fetches
    claims: list[fetches.FetchClaim | None] = []
    start = threading.Barrier(4)

    def take() -> None:
        start.wait()
        claims.append(fetches.claim(store_engine, attachment_id))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [c for c in claims if c is not None]
    assert len(won) == 1 and won[0].ref == "r" and won[0].channel_id == channel_id and won[0].attempts == 1
    assert fetches.renew_lease(store_engine, attachment_id)
    assert fetches.mark_done(store_engine, attachment_id, b"\x89PNG data", content_type="image/x-png")
    assert not fetches.mark_failed(store_engine, attachment_id, "too late")  # done stays done
    assert fetches.claim(store_engine, attachment_id) is None
    [row] = [r for r in _rows(store_engine) if r.id == attachment_id]
    assert (row.fetch_state, row.data, row.size, row.content_type, row.lease_until) == (
        "done", b"\x89PNG data", 9, "image/x-png", None)
    [told] = _events(store_engine, "message.updated")
    assert told.conversation_id == recorded.conversation_id
    assert told.data == {"message_id": recorded.message_id, "attachment_id": attachment_id, "state": "done"}


def test_an_expired_lease_is_taken_over_a_retry_waits_and_a_failure_keeps_its_reason(
        store_engine: Engine, remote_kind: str) -> None:  # noqa: F811
    channel_id = create_channel(store_engine, remote_kind, "files", CONFIG)
    [recorded] = record_inbound(store_engine, channel_id, [_message(1, RemoteAttachment("r", "a.png", "image/png"))])
    [attachment_id] = recorded.fetches
    assert fetches.claim(store_engine, attachment_id) is not None
    assert fetches.claim(store_engine, attachment_id) is None  # held
    with store_engine.begin() as conn:  # the worker died: its lease ran out
        conn.execute(update(attachments).where(f.id == attachment_id)
                     .values(lease_until=utcnow() - timedelta(seconds=1)))
    taken = fetches.claim(store_engine, attachment_id)
    assert taken is not None and taken.attempts == 2
    fetches.mark_retry(store_engine, attachment_id, "file server answered HTTP 503", 60)
    assert fetches.claim(store_engine, attachment_id) is None  # not due for a minute
    assert fetches.due(store_engine, grace=0) == []
    [row] = [r for r in _rows(store_engine) if r.id == attachment_id]
    assert (row.fetch_state, row.fetch_error) == ("pending", "file server answered HTTP 503")
    assert _events(store_engine, "message.updated") == []  # still pending: no change of state
    assert fetches.mark_failed(store_engine, attachment_id, "gone\x00 for good")
    [row] = [r for r in _rows(store_engine) if r.id == attachment_id]
    assert (row.fetch_state, row.fetch_error, row.data) == ("failed", "gone\ufffd for good", b"")
    assert [e.data["state"] for e in _events(store_engine, "message.updated")] == ["failed"]


def test_the_sweep_lists_due_files_not_held_ones(store_engine: Engine, remote_kind: str) -> None:  # noqa: F811
    channel_id = create_channel(store_engine, remote_kind, "files", CONFIG)
    results = record_inbound(store_engine, channel_id,
                             [_message(n, RemoteAttachment(f"r{n}", "a.png", "image/png")) for n in range(3)])
    ids = [r.fetches[0] for r in results]
    assert fetches.due(store_engine, grace=60) == []  # just stored: their jobs were rung
    _due_since(store_engine, ids, 120)
    assert fetches.due(store_engine, grace=60) == ids
    # Just rung: not at the next sweep (a minute from now: half their wait. With no grace and no
    # wait the look would be due within milliseconds, and a loaded machine's next sweep came later.)
    assert fetches.due(store_engine, grace=60) == []
    _look_due(store_engine, ids)  # the sweep's next look: their jobs were lost again
    fetches.claim(store_engine, ids[0])
    fetches.claim(store_engine, ids[1])
    fetches.mark_done(store_engine, ids[1], b"x")
    assert fetches.due(store_engine, grace=60) == [ids[2]]


def _due_since(engine: Engine, ids: list[int], seconds: float) -> None:
    """The files' fetch due ``seconds`` ago: queued behind others, or lost."""
    with engine.begin() as conn:
        conn.execute(update(attachments).where(f.id.in_(ids))
                     .values(next_fetch_at=utcnow() - timedelta(seconds=seconds)))


def _look_due(engine: Engine, ids: list[int]) -> None:
    with engine.begin() as conn:
        conn.execute(update(attachments).where(f.id.in_(ids)).values(look_again_at=utcnow() - timedelta(seconds=1)))


def test_a_file_waiting_its_turn_is_rung_again_after_half_its_wait_by_one_sweep(
    store_engine: Engine, remote_kind: str  # noqa: F811
) -> None:
    channel_id = create_channel(store_engine, remote_kind, "files", CONFIG)
    results = record_inbound(store_engine, channel_id,
                             [_message(n, RemoteAttachment(f"r{n}", "a.png", "image/png")) for n in range(30)])
    ids = [r.fetches[0] for r in results]
    _due_since(store_engine, ids, 60)
    rung: list[list[int]] = []
    start = threading.Barrier(4)

    def sweep() -> None:
        start.wait()
        rung.append(fetches.due(store_engine, grace=10))

    sweeps = [threading.Thread(target=sweep) for _ in range(4)]
    before = utcnow()
    for thread in sweeps:
        thread.start()
    for thread in sweeps:
        thread.join()
    after = utcnow()
    assert sorted(r for each in rung for r in each) == ids  # each once, by one of the sweeps at once
    for row in _rows(store_engine):  # about 30 s from now: half of the minute each waited
        if row.id in ids:
            assert_looks_again_after_half_the_wait(row.look_again_at, row.next_fetch_at, before, after)
    assert fetches.due(store_engine, grace=10) == []
    _look_due(store_engine, ids[:5])
    assert fetches.due(store_engine, grace=10) == ids[:5]
