"""Business hours: when a team (or the shop) answers, and time counted in its open hours.

The one definition of opening times, used by SLA due times, reassignment, the automatic
acknowledgement and (at merge) the rules and the web chat's "nobody there". Hours are pure
data (:class:`Hours`, read from the JSON a team or the shop keeps with :func:`parse`); the
functions here are pure over it. Times in and out are naive UTC, as everywhere in the store; the
weekly intervals and closed days are in the hours' own time zone, so a daylight-saving change
moves them in UTC as a person's working day moves.

JSON form (``teams.hours``, the shop's ``config`` row ``hours``)::

    {"timezone": "Europe/Madrid",
     "week": {"mon": [["09:00", "14:00"], ["15:00", "18:00"]], ..., "sun": []},
     "country": "ES", "subdivision": "CT",   # public holidays (the ``holidays`` library)
     "closed": ["2026-12-24"]}                # the shop's own closed days

No hours at all (None) means always open. A day absent from ``week`` is closed.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HORIZON_DAYS = 800  # a search for the next opening gives up after this long (hours never open)


@dataclasses.dataclass(frozen=True, slots=True)
class Hours:
    """A weekly timetable in a time zone, minus public holidays and the shop's closed days.
    ``week[d]``: the (start, end) minutes of local day ``d`` (Monday 0), end up to 1440."""

    timezone: str
    week: tuple[tuple[tuple[int, int], ...], ...]
    country: str | None = None
    subdivision: str | None = None
    closed: frozenset[date] = frozenset()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _minutes(text: str) -> int:
    hh, _, mm = str(text).partition(":")
    value = int(hh) * 60 + int(mm or 0)
    if not (0 <= int(mm or 0) < 60 and 0 <= value <= 1440):
        raise ValueError(f"{text!r} is not a time of day (HH:MM, up to 24:00)")
    return value


def parse(data: dict[str, Any] | None) -> Hours | None:
    """Hours from their JSON form (see the module docstring); None for None (always open).
    ValueError names what is wrong: an unknown time zone, day, country, or a bad interval."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ValueError("hours must be an object")
    tz = data.get("timezone") or "UTC"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r}") from None
    week_in = data.get("week") or {}
    unknown = set(week_in) - set(DAYS)
    if unknown:
        raise ValueError(f"unknown day(s) {sorted(unknown)}: use {', '.join(DAYS)}")
    week: list[tuple[tuple[int, int], ...]] = []
    for day in DAYS:
        spans = []
        for span in week_in.get(day) or []:
            try:
                start, end = (_minutes(x) for x in span)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{day}: {span!r} is not a [\"HH:MM\", \"HH:MM\"] interval ({exc})") from None
            if start >= end:
                raise ValueError(f"{day}: interval {span!r} ends before it starts")
            spans.append((start, end))
        spans.sort()
        if any(a[1] > b[0] for a, b in itertools.pairwise(spans)):
            raise ValueError(f"{day}: intervals overlap")
        week.append(tuple(spans))
    country = data.get("country") or None
    subdivision = data.get("subdivision") or None
    if country is not None:
        try:
            holidays_lib.country_holidays(country, subdiv=subdivision, years=2026)
        except (NotImplementedError, KeyError) as exc:
            raise ValueError(f"no public holidays known for {country!r}/{subdivision!r}: {exc}") from None
    try:
        closed = frozenset(date.fromisoformat(str(d)) for d in data.get("closed") or [])
    except ValueError as exc:
        raise ValueError(f"closed days must be YYYY-MM-DD dates: {exc}") from None
    return Hours(tz, tuple(week), country, subdivision, closed)


def dump(hours: Hours | None) -> dict[str, Any] | None:
    """The JSON form of ``hours`` (the inverse of :func:`parse`)."""
    if hours is None:
        return None

    def hhmm(m: int) -> str:
        return f"{m // 60:02d}:{m % 60:02d}"

    return {"timezone": hours.timezone,
            "week": {d: [[hhmm(s), hhmm(e)] for s, e in spans] for d, spans in zip(DAYS, hours.week, strict=True)},
            "country": hours.country, "subdivision": hours.subdivision,
            "closed": sorted(d.isoformat() for d in hours.closed)}


@functools.lru_cache(maxsize=256)
def _public(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    return frozenset(holidays_lib.country_holidays(country, subdiv=subdivision, years=year))


def closed_on(hours: Hours, day: date) -> bool:
    """Whether the local ``day`` is a public holiday or one of the shop's closed days."""
    if day in hours.closed:
        return True
    return hours.country is not None and day in _public(hours.country, hours.subdivision, day.year)


def _utc(local: datetime) -> datetime:
    return local.astimezone(UTC).replace(tzinfo=None)


@functools.lru_cache(maxsize=4096)
def day_intervals(hours: Hours, day: date) -> tuple[tuple[datetime, datetime], ...]:
    """The open intervals of one local day, in naive UTC (none on a closed day). Wall-clock times
    of that day: a daylight-saving change moves them in UTC as it moves a person's working day."""
    if closed_on(hours, day):
        return ()
    zone = hours.zone
    spans = []
    for s, e in hours.week[day.weekday()]:
        begin = _utc(datetime.combine(day, time(s // 60, s % 60), zone))
        end = (_utc(datetime.combine(day, time(e // 60, e % 60), zone)) if e < 1440
               else _utc(datetime.combine(day + timedelta(days=1), time(0), zone)))
        if end > begin:
            spans.append((begin, end))
    return tuple(spans)


def intervals(hours: Hours, start: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The open intervals (naive UTC, in order) from the local day before ``start`` onwards, for
    at most HORIZON_DAYS days. Adjacent intervals (a day open until 24:00 and the next from
    00:00) are joined."""
    day = start.replace(tzinfo=UTC).astimezone(hours.zone).date() - timedelta(days=1)
    pending: tuple[datetime, datetime] | None = None
    for _ in range(HORIZON_DAYS):
        for begin, end in day_intervals(hours, day):
            if pending is not None and pending[1] >= begin:
                pending = (pending[0], max(pending[1], end))
                continue
            if pending is not None:
                yield pending
            pending = (begin, end)
        day += timedelta(days=1)
    if pending is not None:
        yield pending


def open_at(hours: Hours | None, at: datetime) -> bool:
    """Whether the shop answers at ``at`` (naive UTC). No hours: always open."""
    if hours is None:
        return True
    for begin, end in intervals(hours, at):
        if begin > at:
            return False
        if at < end:
            return True
    return False


def next_open(hours: Hours | None, at: datetime) -> datetime | None:
    """``at`` itself when open, else the next opening (naive UTC); None when the hours never open
    within HORIZON_DAYS."""
    if hours is None:
        return at
    for begin, end in intervals(hours, at):
        if end > at:
            return max(begin, at)
    return None


def business_seconds_between(hours: Hours | None, start: datetime, end: datetime) -> float:
    """Seconds of open time between ``start`` and ``end`` (0 when ``end`` is not after it)."""
    if end <= start:
        return 0.0
    if hours is None:
        return (end - start).total_seconds()
    total = 0.0
    for begin, stop in intervals(hours, start):
        if begin >= end:
            break
        overlap = (min(stop, end) - max(begin, start)).total_seconds()
        if overlap > 0:
            total += overlap
    return total


def add_business_time(hours: Hours | None, start: datetime, seconds: float) -> datetime | None:
    """The moment ``seconds`` of open time after ``start``; None when the hours never reach it."""
    if hours is None:
        return start + timedelta(seconds=seconds)
    left = timedelta(seconds=max(0.0, seconds))
    for begin, stop in intervals(hours, start):
        if stop <= start:
            continue
        begin = max(begin, start)
        span = stop - begin
        if left <= span:
            return begin + left
        left -= span
    return None


def local(hours: Hours | None, at: datetime) -> datetime:
    """``at`` (naive UTC) as wall time in the hours' zone (UTC without hours), zone-aware."""
    return at.replace(tzinfo=UTC).astimezone(hours.zone if hours is not None else UTC)
