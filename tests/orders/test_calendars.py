"""orders.calendars: working-time arithmetic (pure, zoneinfo, DST-safe)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from orders.calendars import (
    CalendarInvalid,
    calendar_build,
    due_at_add,
    is_open,
    working_minutes_between,
)

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = {str(day): [["08:00", "18:00"]] for day in range(5)}  # closed Sat-Sun


def berlin(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def office(holidays: list[str] | None = None):
    return calendar_build(time_zone="Europe/Berlin", working_hours=WEEKDAYS, holidays=holidays)


def test_no_hours_and_no_holidays_is_always_open():
    assert calendar_build(time_zone="Europe/Berlin", working_hours={}, holidays=[]) is None
    start = datetime(2026, 12, 4, 16, 50, tzinfo=UTC)
    assert due_at_add(start=start, minutes=60, calendar=None) == datetime(
        2026, 12, 4, 17, 50, tzinfo=UTC
    )


def test_friday_evening_runs_out_on_monday_after_the_remaining_minutes():
    # 10 minutes on Friday, the other 50 from Monday's 08:00 opening.
    due = due_at_add(start=berlin(2026, 12, 4, 17, 50), minutes=60, calendar=office())
    assert due == berlin(2026, 12, 7, 8, 50)


def test_inside_opening_hours_minutes_are_wall_minutes():
    due = due_at_add(start=berlin(2026, 12, 2, 9, 0), minutes=60, calendar=office())
    assert due == berlin(2026, 12, 2, 10, 0)


def test_a_start_while_closed_counts_from_the_next_opening():
    due = due_at_add(start=berlin(2026, 12, 5, 11, 0), minutes=30, calendar=office())
    assert due == berlin(2026, 12, 7, 8, 30)


def test_a_holiday_is_a_closed_day():
    due = due_at_add(start=berlin(2026, 12, 4, 17, 50), minutes=60, calendar=office(["2026-12-07"]))
    assert due == berlin(2026, 12, 8, 8, 50)


@pytest.mark.parametrize(
    ("friday", "monday_utc"),
    [
        # Spring forward (29 March 2026): Friday in CET (+1), Monday in CEST (+2).
        (berlin(2026, 3, 27, 17, 50), datetime(2026, 3, 30, 6, 50, tzinfo=UTC)),
        # Fall back (25 October 2026): Friday in CEST, Monday in CET.
        (berlin(2026, 10, 23, 17, 50), datetime(2026, 10, 26, 7, 50, tzinfo=UTC)),
    ],
)
def test_dst_weekends_keep_monday_0850_local(friday, monday_utc):
    due = due_at_add(start=friday, minutes=60, calendar=office())
    assert due == monday_utc
    assert due.astimezone(BERLIN).strftime("%a %H:%M") == "Mon 08:50"


def test_a_span_across_the_dst_night_counts_real_minutes():
    # Open all day (holidays only): 23:00 + 4 real hours on the spring-forward
    # night is 04:00 CEST, not 03:00.
    calendar = calendar_build(time_zone="Europe/Berlin", working_hours={}, holidays=["2026-01-01"])
    due = due_at_add(start=berlin(2026, 3, 28, 23, 0), minutes=240, calendar=calendar)
    assert due == berlin(2026, 3, 29, 4, 0)
    assert due.astimezone(BERLIN).utcoffset().total_seconds() == 7200
    assert working_minutes_between(
        start=berlin(2026, 3, 28, 23, 0), end=berlin(2026, 3, 29, 4, 0), calendar=calendar
    ) == pytest.approx(240)


def test_working_minutes_between_skip_the_weekend():
    minutes = working_minutes_between(
        start=berlin(2026, 12, 4, 17, 50), end=berlin(2026, 12, 7, 8, 50), calendar=office()
    )
    assert minutes == pytest.approx(60)
    assert is_open(at=berlin(2026, 12, 4, 17, 59), calendar=office())
    assert not is_open(at=berlin(2026, 12, 5, 12, 0), calendar=office())


@pytest.mark.parametrize(
    ("hours", "holidays", "tz"),
    [
        ({"0": [["18:00", "08:00"]]}, [], "Europe/Berlin"),
        ({"7": [["08:00", "18:00"]]}, [], "Europe/Berlin"),
        ({"0": [["8h", "18:00"]]}, [], "Europe/Berlin"),
        ({"0": [["08:00", "18:00"]]}, ["next monday"], "Europe/Berlin"),
        ({"0": [["08:00", "18:00"]]}, [], "Mars/Olympus"),
        ({"0": []}, [], "Europe/Berlin"),
    ],
)
def test_an_unreadable_calendar_is_refused(hours, holidays, tz):
    with pytest.raises(CalendarInvalid):
        calendar_build(time_zone=tz, working_hours=hours, holidays=holidays)
