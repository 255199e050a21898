"""Service levels: response targets per channel kind and priority, counted in business hours.

The targets are the shop's ``sla`` setting (store.sla), JSON::

    {"near": 0.8,                       # a near-breach at this fraction of the target
     "targets": {"email": {"first": 86400, "next": 86400},
                 "chat": {"first": 300, "next": 600},
                 "whatsapp:2": {"first": 900, "next": 900}}}   # kind[:priority]

A key is a channel kind (``whatsapp``) or a kind group (``email``, ``chat``, ``messaging``: see
``connectors.CAPACITY_GROUPS``, the groups capacity is counted in), optionally with a priority; the most specific key wins (kind:priority,
group:priority, kind, group), then the defaults. Times are seconds of business time: a clock
started on Friday evening runs from Monday's opening.

:func:`deadline` is the rule the store applies when a clock starts (``store.sla.Deadline``).
"""

from __future__ import annotations

import functools
import json
import statistics
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from connectors import CAPACITY_GROUPS, capacity_group
from router import hours as hours_rule
from store import sla as sla_store
from store.sla import ClockStart

DEFAULT_NEAR = 0.8
DEFAULT_TARGETS: dict[str, dict[str, float]] = {
    "email": {"first": 24 * 3600.0, "next": 24 * 3600.0},
    "chat": {"first": 5 * 60.0, "next": 5 * 60.0},
    "messaging": {"first": 3600.0, "next": 3600.0},
}


def validate(data: dict[str, Any] | None) -> dict[str, Any]:
    """The SLA setting checked and normalised; ValueError names what is wrong."""
    data = data or {}
    near = float(data.get("near", DEFAULT_NEAR))
    if not 0 < near < 1:
        raise ValueError("near must be a fraction between 0 and 1")
    targets: dict[str, dict[str, float]] = {}
    for key, value in (data.get("targets") or {}).items():
        kind, _, priority = str(key).partition(":")
        if kind not in CAPACITY_GROUPS and kind not in DEFAULT_TARGETS:
            raise ValueError(f"unknown channel kind or group {kind!r}")
        if priority and not priority.lstrip("-").isdigit():
            raise ValueError(f"{key!r}: the priority after ':' must be a whole number")
        if not isinstance(value, dict) or not set(value) <= {"first", "next"} or not value:
            raise ValueError(f"{key!r}: give {{\"first\": seconds, \"next\": seconds}}")
        for which, seconds in value.items():
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0:
                raise ValueError(f"{key!r}.{which}: a positive number of seconds")
        targets[str(key)] = {w: float(s) for w, s in value.items()}
    return {"near": near, "targets": targets}


def target(sla: dict[str, Any] | None, channel_kind: str, priority: int, kind: str) -> float:
    """Seconds of business time for the ``kind`` response (first | next) on ``channel_kind`` at
    ``priority`` (see the module docstring for the order of lookup)."""
    group = capacity_group(channel_kind)
    targets = (sla or {}).get("targets") or {}
    for key in (f"{channel_kind}:{priority}", f"{group}:{priority}", channel_kind, group):
        found = targets.get(key, {}).get(kind)
        if found is not None:
            return float(found)
    return DEFAULT_TARGETS[group][kind]


@functools.lru_cache(maxsize=128)
def _hours(encoded: str) -> hours_rule.Hours | None:
    return hours_rule.parse(json.loads(encoded))


def hours_of(data: dict[str, Any] | None) -> hours_rule.Hours | None:
    """Parsed hours of their JSON, cached (parsing checks the holiday calendar)."""
    return None if data is None else _hours(json.dumps(data, sort_keys=True))


def deadline(start: ClockStart) -> tuple[datetime | None, datetime | None]:
    """The near-breach and due times of a clock: the target's fraction and the target, each
    added to its start in business time."""
    hours = hours_of(start.hours)
    seconds = target(start.sla, start.channel_kind, start.priority, start.kind)
    near = float((start.sla or {}).get("near", DEFAULT_NEAR))
    return (hours_rule.add_business_time(hours, start.started_at, seconds * near),
            hours_rule.add_business_time(hours, start.started_at, seconds))


def retarget(engine: Engine, conversation_id: int) -> bool:
    """A conversation's priority or team changed: its running clock follows (store.sla.retarget)."""
    return sla_store.retarget(engine, conversation_id, deadline)


def sweep_sla(engine: Engine, now: datetime | None = None) -> tuple[list[int], list[int]]:
    """The scheduler's part: note near-breaches and breaches (events, once each). Returns the
    conversations noted (near, breached)."""
    return sla_store.note_due(engine, now)


def report(clocks: Sequence[Any], now: datetime) -> list[dict[str, Any]]:
    """The SLA report over clocks (store.sla.clocks_between), by channel kind and priority: met
    (answered by the due time), breached (answered late, or unanswered past it), near-breach
    (reached the warning time), still open (not yet due), unanswered (the wait ended without an
    answer before its due time, e.g. resolved), and the median first response in seconds."""
    groups: dict[tuple[str, int], dict[str, Any]] = {}
    firsts: dict[tuple[str, int], list[float]] = {}
    for clock in clocks:
        key = (clock.channel_kind, clock.priority)
        row = groups.setdefault(key, {"channel_kind": key[0], "priority": key[1], "met": 0, "breached": 0,
                                      "near_breach": 0, "open": 0, "unanswered": 0,
                                      "median_first_response_seconds": None})
        late = clock.due_at is not None and (clock.answered_at or clock.ended_at or now) > clock.due_at
        if clock.answered_at is not None and not late:
            row["met"] += 1
        elif late or clock.breached_at is not None:
            row["breached"] += 1
        elif clock.ended_at is not None:
            row["unanswered"] += 1
        else:
            row["open"] += 1
        if clock.near_noted_at is not None:
            row["near_breach"] += 1
        if clock.kind == "first" and clock.answered_at is not None:
            firsts.setdefault(key, []).append((clock.answered_at - clock.started_at).total_seconds())
    for key, values in firsts.items():
        groups[key]["median_first_response_seconds"] = statistics.median(values)
    return [groups[key] for key in sorted(groups)]
