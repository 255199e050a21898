"""What SLA clocks cost: inbound batches stored with and without the clock rule (the baseline, in
the same run, on the same scratch PostgreSQL database), due times computed per second in business
hours with holidays against wall-clock ones, and the scheduler's SLA sweep with many clocks open.

    python -m bench.sla [--conversations 8000] [--batch 100]

Last line: one JSON object (``store_ratio_with_clocks``: stored messages per second with clocks
over without; ``sweep_idle_ms``: a sweep with every clock open and nothing due).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timedelta
from typing import Any

from bench.common import scratch_store

MADRID = {"timezone": "Europe/Madrid", "week": {d: [["09:00", "14:00"], ["15:00", "18:00"]]
                                                for d in ("mon", "tue", "wed", "thu", "fri")},
          "country": "ES", "subdivision": "CT"}


def _messages(prefix: str, start: int, count: int) -> list[Any]:
    from connectors.base import Identity, InboundMessage

    return [InboundMessage(external_id=f"{prefix}-{n}", sender=Identity(f"{prefix}-c{n}", name="Customer"),
                           text="Where is my order?", thread_key=f"{prefix}-t{n}") for n in range(start, start + count)]


def _store_both(engine: Any, channel_id: int, total: int, batch: int, deadline: Any) -> tuple[float, float]:
    """Messages per second stored without and with the clock rule, batch by batch in turn (the
    order swapped every other batch), so a noisy neighbour weighs on both arms alike."""
    from store.inbound import record_inbound

    spent = {"without": 0.0, "with": 0.0}
    for n, start in enumerate(range(0, total, batch)):
        arms = [("without", None), ("with", deadline)]
        for arm, rule in arms if n % 2 == 0 else arms[::-1]:
            messages = _messages(arm, start, batch)
            started = time.perf_counter()
            record_inbound(engine, channel_id, messages, deadline=rule)
            spent[arm] += time.perf_counter() - started
    return total / spent["without"], total / spent["with"]


def _due_rate(hours: dict[str, Any] | None, count: int) -> float:
    from router.sla import deadline
    from store.sla import ClockStart

    base = datetime(2026, 11, 27, 16, 0)
    started = time.perf_counter()
    for n in range(count):
        deadline(ClockStart("first", "email", 0, base + timedelta(minutes=7 * n % 20000), hours, None))
    return count / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.sla", description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=8000, help="new conversations stored, both arms")
    parser.add_argument("--batch", type=int, default=100, help="messages per inbound transaction")
    args = parser.parse_args(argv)
    with scratch_store() as (engine, channel_id):
        from router.sla import deadline, sweep_sla
        from store import sla
        from store.models import utcnow

        sla.set_config(engine, "hours", MADRID)
        without, with_clocks = _store_both(engine, channel_id, args.conversations // 2, args.batch, deadline)
        started = time.perf_counter()
        sweep_sla(engine)  # nothing due: the Madrid email target is a day of business hours
        idle_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        near, breached = sweep_sla(engine, utcnow() + timedelta(days=30))  # everything due
        due_ms = (time.perf_counter() - started) * 1000
        due_rate = _due_rate(MADRID, 5000)
        wall_rate = _due_rate(None, 5000)
    result = {
        "bench": "sla", "conversations": args.conversations, "batch": args.batch,
        "msgs_per_s_with_clocks": round(with_clocks, 1), "baseline_msgs_per_s": round(without, 1),
        "store_ratio_with_clocks": round(with_clocks / without, 3),
        "sweep_idle_ms": round(idle_ms, 1), "sweep_first_pass_ms": round(due_ms, 1),
        "noted_in_first_pass": len(near) + len(breached),
        "due_times_per_s_business_hours": round(due_rate), "baseline_due_times_per_s_wall_clock": round(wall_rate),
    }
    print(f"stored with SLA clocks: {with_clocks:.0f} msgs/s; without (baseline): {without:.0f} msgs/s "
          f"(ratio {with_clocks / without:.2f})")
    print(f"SLA sweep with {args.conversations // 2} clocks open: {idle_ms:.1f} ms idle; {due_ms:.0f} ms for a "
          f"pass that notes {len(near) + len(breached)} near-breaches and breaches (500 a kind a pass)")
    print(f"due times: {due_rate:.0f}/s in Madrid business hours with holidays; {wall_rate:.0f}/s wall clock")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
