"""Business hours (router.hours) and SLA due times (router.sla.deadline) across weekends,
holidays and daylight-saving changes, in Europe/Madrid and America/New_York."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from router.hours import add_business_time, business_seconds_between, dump, next_open, open_at, parse
from router.sla import deadline, target, validate
from store.sla import ClockStart

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
MADRID = {"timezone": "Europe/Madrid", "week": {d: [["09:00", "14:00"], ["15:00", "18:00"]] for d in WEEKDAYS},
          "country": "ES", "subdivision": "CT", "closed": ["2026-12-24"]}
NEW_YORK = {"timezone": "America/New_York", "week": {d: [["09:00", "17:00"]] for d in WEEKDAYS}, "country": "US"}
H = 3600


@pytest.fixture
def madrid():  # type: ignore[no-untyped-def]
    return parse(MADRID)


def test_open_at_follows_the_local_week_lunch_and_weekend(madrid) -> None:  # type: ignore[no-untyped-def]
    # Monday 30 November 2026, Madrid is UTC+1 in winter.
    assert not open_at(madrid, datetime(2026, 11, 30, 7, 59))
    assert open_at(madrid, datetime(2026, 11, 30, 8, 0))  # 09:00 local
    assert not open_at(madrid, datetime(2026, 11, 30, 13, 30))  # lunch, 14:30 local
    assert open_at(madrid, datetime(2026, 11, 30, 16, 59))
    assert not open_at(madrid, datetime(2026, 11, 30, 17, 0))  # 18:00 local: closed
    assert not open_at(madrid, datetime(2026, 11, 28, 10, 0))  # Saturday
    assert open_at(None, datetime(2026, 11, 28, 3, 0))  # no hours: always open


def test_public_holidays_of_the_region_and_the_shops_own_days(madrid) -> None:  # type: ignore[no-untyped-def]
    assert not open_at(madrid, datetime(2026, 12, 8, 10, 0))  # Immaculate Conception (Spain)
    assert not open_at(madrid, datetime(2026, 12, 24, 10, 0))  # the shop's own closed day
    assert not open_at(madrid, datetime(2026, 12, 25, 10, 0))  # Christmas
    assert not open_at(madrid, datetime(2026, 12, 26, 10, 0))  # Saint Stephen: Catalonia only (a Saturday anyway)
    assert not open_at(madrid, datetime(2026, 9, 11, 10, 0))  # Diada: Catalonia's, a Friday
    elsewhere = parse({**MADRID, "subdivision": "MD"})
    assert open_at(elsewhere, datetime(2026, 9, 11, 10, 0))  # Madrid region works that Friday
    assert next_open(madrid, datetime(2026, 12, 7, 20, 0)) == datetime(2026, 12, 9, 8, 0)


def test_next_open_is_now_when_open_else_the_next_opening(madrid) -> None:  # type: ignore[no-untyped-def]
    at = datetime(2026, 11, 30, 10, 0)
    assert next_open(madrid, at) == at
    assert next_open(madrid, datetime(2026, 11, 30, 13, 10)) == datetime(2026, 11, 30, 14, 0)
    assert next_open(madrid, datetime(2026, 11, 27, 18, 0)) == datetime(2026, 11, 30, 8, 0)  # Friday night -> Monday
    never = parse({"timezone": "UTC", "week": {}})
    assert next_open(never, at) is None
    assert add_business_time(never, at, 60) is None


def test_business_time_across_a_weekend(madrid) -> None:  # type: ignore[no-untyped-def]
    friday = datetime(2026, 11, 27, 16, 0)  # 17:00 local, an hour before closing
    monday = datetime(2026, 11, 30, 9, 0)  # 10:00 local
    assert business_seconds_between(madrid, friday, monday) == 2 * H
    assert add_business_time(madrid, friday, 2 * H) == monday
    assert add_business_time(madrid, friday, 0) == friday
    assert business_seconds_between(madrid, monday, friday) == 0


def test_business_time_across_a_daylight_saving_change() -> None:
    madrid = parse(MADRID)
    # Sunday 25 October 2026 Madrid goes from UTC+2 to UTC+1: Friday 17:00 local is 15:00 UTC,
    # Monday 09:00 local is 08:00 UTC.
    friday = datetime(2026, 10, 23, 15, 0)
    assert add_business_time(madrid, friday, 2 * H) == datetime(2026, 10, 26, 9, 0)
    assert business_seconds_between(madrid, friday, datetime(2026, 10, 26, 9, 0)) == 2 * H
    # Spring: 29 March 2026 to UTC+2; Monday 09:00 local is 07:00 UTC.
    assert next_open(madrid, datetime(2026, 3, 28, 12, 0)) == datetime(2026, 3, 30, 7, 0)
    new_york = parse(NEW_YORK)
    # New York leaves daylight time on 1 November 2026: Friday 30 Oct 17:00 local = 21:00 UTC,
    # Monday 2 Nov 09:00 local = 14:00 UTC.
    assert next_open(new_york, datetime(2026, 10, 30, 21, 0)) == datetime(2026, 11, 2, 14, 0)
    assert add_business_time(new_york, datetime(2026, 10, 30, 20, 0), 2 * H) == datetime(2026, 11, 2, 15, 0)


def test_a_day_open_until_midnight_joins_the_next() -> None:
    hours = parse({"timezone": "UTC", "week": {"mon": [["20:00", "24:00"]], "tue": [["00:00", "02:00"]]}})
    monday = datetime(2026, 11, 30, 21, 0)
    assert open_at(hours, datetime(2026, 12, 1, 0, 0))
    assert add_business_time(hours, monday, 4 * H) == datetime(2026, 12, 1, 1, 0)


@pytest.mark.parametrize("bad", [
    {"timezone": "Mars/Olympus"},
    {"week": {"funday": []}},
    {"week": {"mon": [["10:00", "09:00"]]}},
    {"week": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}},
    {"week": {"mon": [["25:00", "26:00"]]}},
    {"country": "XX"},
    {"closed": ["tomorrow"]},
])
def test_bad_hours_are_refused_with_a_reason(bad: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError):
        parse(bad)


def test_dump_is_parse_inverse(madrid) -> None:  # type: ignore[no-untyped-def]
    assert parse(dump(madrid)) == madrid
    assert madrid.closed == frozenset({date(2026, 12, 24)})


def _clock(kind: str, channel: str, start: datetime, hours: dict | None, sla: dict | None = None,  # type: ignore[type-arg]
           priority: int = 0) -> tuple[datetime | None, datetime | None]:
    return deadline(ClockStart(kind, channel, priority, start, hours, sla))


def test_sla_due_times_across_weekend_holiday_and_dst() -> None:
    # Email, 24 business hours = 3 days of 8 hours. Started Friday 4 Dec 2026 16:00 UTC (17:00
    # Madrid): 1 h that Friday; Monday 7th 8 h; Tuesday 8th a holiday; Wednesday 9th 8 h;
    # Thursday 10th 7 h: 5 h before lunch (which counts nothing), 2 after -> 17:00 local = 16:00 UTC.
    near, due = _clock("first", "email", datetime(2026, 12, 4, 16, 0), MADRID)
    assert due == datetime(2026, 12, 10, 16, 0)
    # 80 %: 19.2 h -> Thursday 10th 2.2 h after 09:00 local = 11:12 local = 10:12 UTC.
    assert near == datetime(2026, 12, 10, 10, 12)
    # Messaging next response, 1 business hour, started Friday 23 Oct 17:30 local (15:30 UTC,
    # summer time): 30 min on Friday, 30 min on Monday 26 Oct after the change -> 09:30 local = 08:30 UTC.
    _, due = _clock("next", "whatsapp", datetime(2026, 10, 23, 15, 30), MADRID)
    assert due == datetime(2026, 10, 26, 8, 30)
    # Chat in New York across Thanksgiving (Thursday 26 Nov 2026): Wednesday 16:58 local + 5 min
    # -> Friday 09:03 local = 14:03 UTC.
    _, due = _clock("first", "webchat", datetime(2026, 11, 25, 21, 58), NEW_YORK)
    assert due == datetime(2026, 11, 27, 14, 3)
    # No hours: wall-clock time.
    assert _clock("first", "sms", datetime(2026, 11, 28, 3, 0), None)[1] == datetime(2026, 11, 28, 4, 0)


def test_sla_targets_most_specific_wins_and_are_validated() -> None:
    sla = validate({"near": 0.5, "targets": {"messaging": {"first": 1800}, "whatsapp": {"first": 900},
                                            "whatsapp:2": {"first": 300}, "email": {"next": 7200}}})
    assert target(sla, "whatsapp", 2, "first") == 300
    assert target(sla, "whatsapp", 0, "first") == 900
    assert target(sla, "telegram", 0, "first") == 1800
    assert target(sla, "telegram", 0, "next") == 3600  # the default
    assert target(sla, "email", 0, "first") == 86400
    assert target(None, "webchat", 0, "first") == 300
    near, due = _clock("first", "sms", datetime(2026, 11, 28, 3, 0), None, sla)
    assert (near, due) == (datetime(2026, 11, 28, 3, 15), datetime(2026, 11, 28, 3, 30))
    for bad in ({"near": 1.5}, {"targets": {"fax": {"first": 1}}}, {"targets": {"email": {"first": -1}}},
                {"targets": {"email:x": {"first": 1}}}, {"targets": {"email": {"soon": 1}}}):
        with pytest.raises(ValueError):
            validate(bad)
    assert timedelta(seconds=target(sla, "email", 1, "next")) == timedelta(hours=2)
