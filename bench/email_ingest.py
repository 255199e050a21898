"""Email backlog import: a Dovecot mailbox of N mixed customer mails imported into PostgreSQL by
the same job that serves a live mailbox (``workers.poll_channel``), then checked message by message.

    python -m bench.email_ingest [--messages 2000] [--batch-size 200]   (or: omnidesk bench email)

The mailbox is made by :mod:`bench.mailgen` (8 languages, 7 charsets, quoted-printable/base64/8-bit,
plain/HTML-only/alternative, 15% attachments with encoded names, 20% replies). Baseline, in the same
run: fetching the same messages over IMAP without parsing or storing them (the transport's ceiling).
Correctness: every message stored once, its subject, its new text (and not the text it quotes), its
attachment's name, and each reply in its parent's conversation; then a full re-import (cursor reset)
must store nothing new.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

if not __package__:  # run by path (python bench/x.py): import from the checkout, not from bench/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.common import DEFAULT_PG, emit, scratch_database, use_database
from bench.mailgen import Expected, generate
from tests.fakes.dovecot_server import Dovecot

SHOP = "support@shop.example"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omnidesk bench email", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=200, help="messages fetched and stored per transaction")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=DEFAULT_PG, help="PostgreSQL to make a scratch database in")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    started = time.perf_counter()
    mails = generate(args.messages, seed=args.seed, shop=SHOP)
    print(f"generated {len(mails)} messages ({sum(1 for m in mails if m.parent)} replies, "
          f"{sum(1 for m in mails if m.attachment)} with attachments, "
          f"{sum(len(m.raw) for m in mails) / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s")
    server = Dovecot()
    try:
        server.start()
        user, _ = server.add_user("shop")
        appended = time.perf_counter()
        server.append_many(user, (m.raw for m in mails))
        print(f"appended to Dovecot in {time.perf_counter() - appended:.1f} s")
        baseline = _fetch_only(server, user, args.batch_size)
        print(f"baseline (IMAP fetch only, no parsing or storing): {baseline:.0f} msgs/s")
        with scratch_database(args.database_url, keep=args.keep) as url:
            result = _import(server, user, url, mails, args.batch_size)
    finally:
        server.close()
    result["baseline_fetch_msgs_per_s"] = round(baseline, 1)
    result["ratio_to_baseline"] = round(result["msgs_per_s"] / baseline, 3) if baseline else None
    print(f"imported {result['stored']} messages in {result['seconds']:.2f} s: {result['msgs_per_s']:.0f} msgs/s")
    for key in ("bodies_ok", "subjects_ok", "threads_ok", "attachments_ok"):
        print(f"  {key}: {result[key]}")
    print(f"  re-import stored {result['reimport_stored']} more (must be 0)")
    emit(result)
    return 0 if result["ok"] else 1


def _fetch_only(server: Dovecot, user: str, batch: int) -> float:
    with server.client(user) as client:
        client.select_folder("INBOX", readonly=True)
        uids = sorted(client.search(["ALL"]))
        began = time.perf_counter()
        for start in range(0, len(uids), batch):
            client.fetch(uids[start:start + batch], ["BODY.PEEK[]"])
        return len(uids) / (time.perf_counter() - began)


def _import(server: Dovecot, user: str, url: str, mails: list[Expected], batch: int) -> dict[str, Any]:
    import workers
    from store.channels import create_channel
    from store.db import get_engine, upgrade

    use_database(url)
    upgrade()
    workers.setup_broker(None)  # routing jobs are rung but not run: this measures the import
    engine = get_engine()
    channel_id = create_channel(engine, "email", "Bench mailbox", {
        "address": SHOP, **server.imap_settings(user), "smtp_host": "127.0.0.1", "smtp_security": "none",
        "import_since_days": None, "batch_size": batch})
    began = time.perf_counter()
    workers.poll_channel.fn(channel_id)
    seconds = time.perf_counter() - began
    result = _check(engine, channel_id, mails)

    from sqlalchemy import update

    from store.sql import channels

    with engine.begin() as conn:  # forget where we were: everything is offered again
        conn.execute(update(channels).where(channels.c.id == channel_id).values(cursor=None))
    workers.poll_channel.fn(channel_id)
    again = _check(engine, channel_id, mails)
    result.update(
        seconds=round(seconds, 3),
        msgs_per_s=round(len(mails) / seconds, 1),
        reimport_stored=again["stored"] - result["stored"],
    )
    result["ok"] = (result["ok"] and result["reimport_stored"] == 0)
    engine.dispose()
    return result


def _check(engine: Any, channel_id: int, mails: list[Expected]) -> dict[str, Any]:
    from sqlalchemy import func, select

    from store.sql import attachments, channels, messages

    m = messages.c
    with engine.connect() as conn:
        rows = {r.external_id: r for r in conn.execute(
            select(m.id, m.external_id, m.conversation_id, m.subject, m.text, m.parse_error)
            .where(m.channel_id == channel_id, m.direction == "in"))}
        files: dict[int, list[str]] = {}
        for message_id, filename in conn.execute(select(attachments.c.message_id, attachments.c.filename)):
            files.setdefault(message_id, []).append(filename)
        errors = conn.execute(select(channels.c.last_error).where(channels.c.id == channel_id)).scalar()
        total = conn.execute(select(func.count()).select_from(messages)).scalar_one()
    bodies = subjects = threads = with_files = 0
    failures: list[str] = []
    for mail in mails:
        row = rows.get(mail.message_id)
        if row is None:
            failures.append(f"{mail.message_id}: not stored")
            continue
        body_ok = mail.new_text in row.text and (mail.quoted_text is None or mail.quoted_text not in row.text)
        bodies += body_ok
        subjects += row.subject == mail.subject
        if mail.parent:
            parent = rows.get(mail.parent)
            threads += bool(parent) and parent.conversation_id == row.conversation_id
        if mail.attachment:
            with_files += files.get(row.id) == [mail.attachment]
        if not body_ok and len(failures) < 5:
            failures.append(f"{mail.message_id}: text {row.text[:120]!r}")
    replies = sum(1 for mail in mails if mail.parent)
    attached = sum(1 for mail in mails if mail.attachment)
    for failure in failures[:5]:
        print("  wrong:", failure)
    return {
        "bench": "email_ingest", "messages": len(mails), "stored": total,
        "bodies_ok": bodies, "subjects_ok": subjects, "threads_ok": threads, "replies": replies,
        "attachments_ok": with_files, "with_attachments": attached, "channel_error": errors,
        "ok": total == len(mails) == bodies == subjects and threads == replies and with_files == attached,
    }


if __name__ == "__main__":
    raise SystemExit(main())
