"""Batches of customers writing again, into conversations already open: each conversation is
locked as the batch reads it, in one order (so two concurrent batches never deadlock), and
updated. The baseline, in the same run on the same scratch PostgreSQL database: batches of new
customers, which open conversations and lock nothing already stored. Both arms take turns batch
by batch; the tables are analysed after seeding, as autovacuum keeps them in a deployment. To
judge a change to this path, compare the ratio of two versions run in turn.

    python -m bench.inbound_batch [--conversations 4000] [--batch 100] [--rounds 4]

Last line: one JSON object (``ratio_to_new``: messages per second into open conversations over
messages per second opening new ones).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from bench.common import scratch_store


def _messages(prefix: str, start: int, count: int, customers: int | None = None) -> list[Any]:
    """``count`` messages from ``prefix``'s customers; with ``customers``, the customers already
    written before (one conversation each, open), round-robin."""
    from connectors.base import Identity, InboundMessage

    who = (lambda n: n % customers) if customers else (lambda n: n)
    return [InboundMessage(external_id=f"{prefix}-m{n}", sender=Identity(f"{prefix}-c{who(n)}", name="Customer"),
                           text="Any news on my order?", thread_key=f"{prefix}-t{who(n)}")
            for n in range(start, start + count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.inbound_batch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=4000, help="open conversations written to again")
    parser.add_argument("--batch", type=int, default=100, help="messages per inbound transaction")
    parser.add_argument("--rounds", type=int, default=4, help="messages per open conversation, measured")
    args = parser.parse_args(argv)
    with scratch_store() as (engine, channel_id):
        from store.inbound import record_inbound

        for start in range(0, args.conversations, args.batch):  # the open conversations, not measured
            record_inbound(engine, channel_id, _messages("open", start, args.batch))
        # Statistics as autovacuum keeps them in a deployment: without them, on tables grown this
        # fast, the planner takes a channel's rows for a handful and scans them all for each look.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
        total = args.conversations * args.rounds
        spent = {"again": 0.0, "new": 0.0}
        for n, start in enumerate(range(args.conversations, args.conversations + total, args.batch)):
            arms = [("again", args.conversations), ("new", None)]
            for arm, customers in arms if n % 2 == 0 else arms[::-1]:
                batch = _messages("open" if customers else "new", start, args.batch, customers)
                began = time.perf_counter()
                results = record_inbound(engine, channel_id, batch)
                spent[arm] += time.perf_counter() - began
                assert not any(r.duplicate for r in results)
        with engine.connect() as conn:
            from sqlalchemy import func, select

            from store.sql import conversations, messages

            stored = conn.execute(select(func.count()).select_from(messages)).scalar()
            opened = conn.execute(select(func.count()).select_from(conversations)).scalar()
    again, new = total / spent["again"], total / spent["new"]
    ok = stored == args.conversations + 2 * total and opened == args.conversations + total
    result = {"bench": "inbound_batch", "conversations": args.conversations, "batch": args.batch,
              "messages_each_arm": total, "msgs_per_s_into_open": round(again, 1),
              "baseline_msgs_per_s_new": round(new, 1), "ratio_to_new": round(again / new, 3), "ok": ok}
    print(f"into open conversations: {again:.0f} msgs/s; new customers (baseline): {new:.0f} msgs/s "
          f"(ratio {again / new:.2f}); {'ok' if ok else 'NOT ok'}: every message stored once, no conversation extra")
    print(json.dumps(result))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
