"""Building blocks shared by the statistics, the KPIs, the roll-up and Prometheus.

Definitions (docs/DECISIONS.md "Success"):

- A healing belongs to the UTC day of its ``issue_detected_at`` (the seed's
  "Recent Failures" and daily breakdown read it that way).
- ``days=N`` is the last N calendar days including today: from 00:00 UTC of
  ``today - (N - 1)`` up to ``now``. ``days=1`` is today.
- *Recovery time* is ``completed_at - issue_detected_at`` of a healing that
  ended SUCCESS; other outcomes did not recover anything and are not timed.
- *Attempted* healings are those that ended SUCCESS, FAILED or
  MANUAL_REQUIRED; SKIPPED ones (recovered by themselves, guard, dry run) and
  still-active ones are not attempts (docs/DECISIONS.md "Attempts").

Percentiles are linear-interpolated (PostgreSQL's ``percentile_cont``); on
PostgreSQL they are computed in the database, on the embedded SQLite default
in Python.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Aggregate, Avg, Count, F, FloatField, Func, Q, QuerySet
from django.utils import timezone

from healing.models import FINAL_STATUSES, HealingAction, RecoveryStatus


class SecondsBetween(Func):
    """``end - start`` in seconds, as a float, on PostgreSQL and SQLite."""

    output_field = FloatField()
    arity = 2

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="EXTRACT(EPOCH FROM (%(expressions)s))::double precision",
            arg_joiner=" - ",
            **extra,
        )

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="((julianday(%(expressions)s)) * 86400.0)",
            arg_joiner=") - julianday(",
            **extra_context,
        )


def recovery_seconds() -> SecondsBetween:
    """docs/DECISIONS.md "Success": recovery time = completed - detected."""
    return SecondsBetween(F("completed_at"), F("issue_detected_at"))


class PercentileCont(Aggregate):
    """PostgreSQL's ordered-set ``percentile_cont(f) WITHIN GROUP (ORDER BY x)``."""

    function = "percentile_cont"
    output_field = FloatField()
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression: Any, *, fraction: float, **extra: Any) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError("fraction is between 0 and 1")
        super().__init__(expression, fraction=float(fraction), **extra)


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks, as ``percentile_cont``."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    if low == high:
        return float(ordered[low])
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def _on_postgres() -> bool:
    return connection.vendor == "postgresql"


def window_start(*, days: int, now: datetime) -> datetime:
    """00:00 UTC of the first of the last ``days`` calendar days (today included)."""
    if days < 1:
        raise ValueError("days must be at least 1")
    first = timezone.localdate(now) - timedelta(days=days - 1)
    return datetime.combine(first, datetime.min.time(), tzinfo=timezone.get_current_timezone())


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, datetime.min.time(), tzinfo=timezone.get_current_timezone())
    return start, start + timedelta(days=1)


def healings_in_window(*, days: int, now: datetime) -> QuerySet[HealingAction]:
    """Healings detected in the last ``days`` days: a range scan of healing_detected_idx."""
    return HealingAction.objects.filter(
        issue_detected_at__gte=window_start(days=days, now=now), issue_detected_at__lte=now
    )


def minutes(seconds: float | None) -> float | None:
    """Seconds as minutes with two decimals (the seed's ``*_minutes`` keys)."""
    return None if seconds is None else round(seconds / 60.0, 2)


def outcome_counts() -> dict[str, Any]:
    """Conditional counts shared by the roll-up, the statistics and the KPIs."""
    return {
        "total_cases": Count("id"),
        "successful_recoveries": Count("id", filter=Q(recovery_status=RecoveryStatus.SUCCESS)),
        "failed_recoveries": Count("id", filter=Q(recovery_status=RecoveryStatus.FAILED)),
        "skipped_recoveries": Count("id", filter=Q(recovery_status=RecoveryStatus.SKIPPED)),
        "manual_required": Count("id", filter=Q(recovery_status=RecoveryStatus.MANUAL_REQUIRED)),
        "active": Count("id", filter=~Q(recovery_status__in=FINAL_STATUSES)),
        "admin_notifications": Count("id", filter=Q(admin_notified=True)),
        "avg_recovery_seconds": Avg(
            recovery_seconds(), filter=Q(recovery_status=RecoveryStatus.SUCCESS)
        ),
    }


def recovery_percentiles(
    healings: QuerySet[HealingAction], *, group_by: Sequence[str] = ()
) -> dict[tuple[Any, ...], tuple[float | None, float | None]]:
    """(p50, p95) recovery seconds of the SUCCESS healings, per group key."""
    successes = healings.filter(recovery_status=RecoveryStatus.SUCCESS, completed_at__isnull=False)
    if _on_postgres():
        rows = (
            successes.order_by()
            .values(*group_by)
            .annotate(
                p50=PercentileCont(recovery_seconds(), fraction=0.5),
                p95=PercentileCont(recovery_seconds(), fraction=0.95),
            )
        )
        return {tuple(row[k] for k in group_by): (row["p50"], row["p95"]) for row in rows}
    grouped: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for row in successes.order_by().values(*group_by).annotate(seconds=recovery_seconds()):
        grouped[tuple(row[k] for k in group_by)].append(row["seconds"])
    return {
        key: (percentile(values, 0.5), percentile(values, 0.95)) for key, values in grouped.items()
    }
