"""Working-time arithmetic for vendor calendars (docs/DECISIONS.md "Vendor time").

Pure functions: no database, no clock. A calendar is a time zone, opening
spans per weekday and closed dates. Minutes are counted on real instants
(UTC), so a DST change never adds or loses a working minute: a span
08:00-18:00 on the day clocks change is still ten hours, and spans are
turned into instants one local day at a time (``zoneinfo`` resolves each
wall time of that day with its own offset).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# How far ahead a due time is looked for: a vendor closed longer than this is
# treated as due at the end of the horizon (never "never").
HORIZON_DAYS = 3 * 366
DAY_MINUTES = 24 * 60
ALL_DAY: tuple[tuple[int, int], ...] = ((0, DAY_MINUTES),)


class CalendarInvalid(ValueError):
    """A calendar's time zone, spans or dates cannot be read."""


@dataclass(frozen=True)
class Calendar:
    tz: ZoneInfo
    # Weekday (0 = Monday) -> opening spans as minutes from local midnight.
    week: Mapping[int, tuple[tuple[int, int], ...]]
    holidays: frozenset[date]

    def spans_on(self, day: date) -> tuple[tuple[int, int], ...]:
        if day in self.holidays:
            return ()
        return self.week.get(day.weekday(), ())


def _minutes(value: str) -> int:
    try:
        hours, minutes = str(value).split(":")
        total = int(hours) * 60 + int(minutes)
    except ValueError as exc:
        raise CalendarInvalid(f"not a HH:MM time: {value!r}") from exc
    if not 0 <= total <= DAY_MINUTES or not 0 <= int(minutes) < 60:
        raise CalendarInvalid(f"not a time of day: {value!r}")
    return total


def _spans(raw: Any) -> tuple[tuple[int, int], ...]:
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise CalendarInvalid(f"opening spans are a list of [start, end] pairs: {raw!r}")
    spans = []
    for span in raw:
        if not isinstance(span, Sequence) or isinstance(span, str) or len(span) != 2:
            raise CalendarInvalid(f"an opening span is [start, end]: {span!r}")
        start, end = _minutes(span[0]), _minutes(span[1])
        if end <= start:
            raise CalendarInvalid(f"a span ends after it starts: {span!r}")
        spans.append((start, end))
    return tuple(sorted(spans))


def calendar_build(
    *, time_zone: str, working_hours: Mapping[str, Any] | None, holidays: Sequence[str] | None
) -> Calendar | None:
    """The calendar of these settings, or None when the vendor is always open.

    No weekly hours means open all day every day; holidays still close it.
    """
    if not working_hours and not holidays:
        return None
    try:
        tz = ZoneInfo(time_zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CalendarInvalid(f"unknown time zone: {time_zone!r}") from exc
    if working_hours:
        week: dict[int, tuple[tuple[int, int], ...]] = {}
        for key, raw in working_hours.items():
            weekday = int(key)
            if not 0 <= weekday <= 6:
                raise CalendarInvalid(f"a weekday is 0 (Monday) to 6 (Sunday): {key!r}")
            week[weekday] = _spans(raw)
    else:
        week = dict.fromkeys(range(7), ALL_DAY)
    try:
        closed = frozenset(date.fromisoformat(str(day)) for day in holidays or ())
    except ValueError as exc:
        raise CalendarInvalid(f"holidays are YYYY-MM-DD dates: {holidays!r}") from exc
    if not any(week.values()):
        raise CalendarInvalid("the vendor is never open: give at least one opening span")
    return Calendar(tz=tz, week=week, holidays=closed)


def _instant(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    if minutes >= DAY_MINUTES:
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    local = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=tz)
    return local.astimezone(UTC)


def open_intervals(*, calendar: Calendar, start: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Opening intervals (UTC) from ``start`` on, clipped to it, in order."""
    first = start.astimezone(calendar.tz).date() - timedelta(days=1)
    for offset in range(HORIZON_DAYS + 2):
        day = first + timedelta(days=offset)
        for begin_min, end_min in calendar.spans_on(day):
            begin = _instant(day, begin_min, calendar.tz)
            end = _instant(day, end_min, calendar.tz)
            begin = max(begin, start)
            if end > begin:
                yield begin, end


def due_at_add(*, start: datetime, minutes: float, calendar: Calendar | None) -> datetime:
    """The instant ``minutes`` working minutes after ``start``."""
    if calendar is None:
        return start + timedelta(minutes=minutes)
    remaining = timedelta(minutes=minutes)
    last = start
    for begin, end in open_intervals(calendar=calendar, start=start):
        if end - begin >= remaining:
            return begin + remaining
        remaining -= end - begin
        last = end
    return last


def working_minutes_between(*, start: datetime, end: datetime, calendar: Calendar | None) -> float:
    """Working minutes from ``start`` to ``end`` (0 when end is not later)."""
    if end <= start:
        return 0.0
    if calendar is None:
        return (end - start).total_seconds() / 60
    total = 0.0
    for begin, finish in open_intervals(calendar=calendar, start=start):
        if begin >= end:
            break
        total += (min(finish, end) - begin).total_seconds() / 60
    return total


def is_open(*, at: datetime, calendar: Calendar | None) -> bool:
    if calendar is None:
        return True
    for begin, end in open_intervals(calendar=calendar, start=at - timedelta(days=2)):
        if begin > at:
            return False
        if begin <= at < end:
            return True
    return False
