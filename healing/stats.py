"""Reads for operators: statistics, KPIs and the "stuck right now" snapshot.

Definitions used everywhere in this module (DESIGN.md "Success"):

- A healing belongs to the UTC day of its ``issue_detected_at`` (the seed's
  "Recent Failures" and daily breakdown read it that way).
- ``days=N`` is the last N calendar days including today: from 00:00 UTC of
  ``today - (N - 1)`` up to ``now``. ``days=1`` is today.
- *Recovery time* is ``completed_at - issue_detected_at`` of a healing that
  ended SUCCESS; other outcomes did not recover anything and are not timed.
- *Attempted* healings are those that ended SUCCESS, FAILED or
  MANUAL_REQUIRED; SKIPPED ones (recovered by themselves, guard, dry run) and
  still-active ones are not attempts (DESIGN.md "Attempts").

Percentiles are linear-interpolated (PostgreSQL's ``percentile_cont``); on
PostgreSQL they are computed in the database, on the embedded SQLite default
in Python.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import (
    Aggregate,
    Avg,
    Count,
    F,
    FloatField,
    Func,
    Min,
    Q,
    QuerySet,
)
from django.db.models.functions import TruncDate
from django.utils import timezone

from healing.models import (
    FINAL_STATUSES,
    HealingAction,
    RecoveryStatus,
    StuckRule,
)
from orders.models import Order

# --- Building blocks -------------------------------------------------------


class SecondsBetween(Func):
    """``end - start`` in seconds, as a float, on PostgreSQL and SQLite."""

    output_field = FloatField()
    arity = 2

    def as_postgresql(self, compiler: Any, conn: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            conn,
            template="EXTRACT(EPOCH FROM (%(expressions)s))::double precision",
            arg_joiner=" - ",
            **extra,
        )

    def as_sqlite(self, compiler: Any, conn: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            conn,
            template="((julianday(%(expressions)s)) * 86400.0)",
            arg_joiner=") - julianday(",
            **extra,
        )


def recovery_seconds() -> SecondsBetween:
    """DESIGN.md: recovery time = completed - detected."""
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


def _rate(numerator: int, denominator: int) -> float | None:
    """A percentage 0..100 with two decimals, or None when nothing was counted."""
    if not denominator:
        return None
    return round(100.0 * numerator / denominator, 2)


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60.0, 2)


def outcome_counts() -> dict[str, Any]:
    """Conditional counts shared by the roll-up and the statistics."""
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
) -> dict[tuple, tuple[float | None, float | None]]:
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
    grouped: dict[tuple, list[float]] = defaultdict(list)
    for row in successes.order_by().values(*group_by).annotate(seconds=recovery_seconds()):
        grouped[tuple(row[k] for k in group_by)].append(row["seconds"])
    return {
        key: (percentile(values, 0.5), percentile(values, 0.95)) for key, values in grouped.items()
    }


def most_common_status(counts: dict[str, int]) -> str | None:
    """The group's most common *final* status, as the seed's example reads.

    Ties go to the alphabetically first status, as PostgreSQL's
    ``mode() WITHIN GROUP (ORDER BY recovery_status)`` does in
    ``healing_statistics_view``; a group with no final healing yet reports its
    most common active status.
    """
    final = {s: n for s, n in counts.items() if s in FINAL_STATUSES and n}
    pool = final or {s: n for s, n in counts.items() if n}
    if not pool:
        return None
    return sorted(pool.items(), key=lambda item: (-item[1], item[0]))[0][0]


def _healings_in_window(*, days: int, now: datetime) -> QuerySet[HealingAction]:
    # An index range scan of healing_detected_idx.
    return HealingAction.objects.filter(
        issue_detected_at__gte=window_start(days=days, now=now), issue_detected_at__lte=now
    )


def _status_counts(
    healings: QuerySet[HealingAction], group_by: Sequence[str]
) -> dict[tuple, Counter]:
    rows = healings.order_by().values(*group_by, "recovery_status").annotate(n=Count("id"))
    counts: dict[tuple, Counter] = defaultdict(Counter)
    for row in rows:
        counts[tuple(row[k] for k in group_by)][row["recovery_status"]] += row["n"]
    return counts


def _grouped(
    healings: QuerySet[HealingAction], group_by: Sequence[str]
) -> list[tuple[tuple, dict[str, Any], tuple[float | None, float | None], Counter]]:
    rows = healings.order_by().values(*group_by).annotate(**outcome_counts())
    percentiles = recovery_percentiles(healings, group_by=group_by)
    statuses = _status_counts(healings, group_by)
    out = []
    for row in rows:
        key = tuple(row[k] for k in group_by)
        out.append((key, row, percentiles.get(key, (None, None)), statuses[key]))
    return out


def _success_rate(row: dict[str, Any]) -> float | None:
    attempted = row["successful_recoveries"] + row["failed_recoveries"] + row["manual_required"]
    return _rate(row["successful_recoveries"], attempted)


# --- Statistics --------------------------------------------------------------


def statistics_daily(*, days: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per (day, issue type, recovery action) of the last ``days`` days.

    The seed's keys (``issue_type``, ``recovery_action``, ``recovery_status``,
    ``total_cases``, ``avg_recovery_time_minutes``, ``successful_recoveries``,
    ``failed_recoveries``) plus ``date``, ``skipped_recoveries``,
    ``manual_interventions``, ``active``, ``p50_recovery_time_minutes``,
    ``p95_recovery_time_minutes``, ``admin_notifications`` (healings that
    paged an admin) and ``success_rate`` (percent of attempted).
    ``total_cases`` counts every healing detected, active ones included.
    Ordered newest day first, then by issue type and action.
    """
    now = now or timezone.now()
    healings = _healings_in_window(days=days, now=now).annotate(date=TruncDate("issue_detected_at"))
    result = []
    for (day, issue_type, action), row, (p50, p95), statuses in _grouped(
        healings, ("date", "issue_type", "recovery_action")
    ):
        result.append(
            {
                "date": day.isoformat(),
                "issue_type": issue_type,
                "recovery_action": action,
                "recovery_status": most_common_status(statuses),
                "total_cases": row["total_cases"],
                "avg_recovery_time_minutes": _minutes(row["avg_recovery_seconds"]),
                "successful_recoveries": row["successful_recoveries"],
                "failed_recoveries": row["failed_recoveries"],
                "skipped_recoveries": row["skipped_recoveries"],
                "manual_interventions": row["manual_required"],
                "active": row["active"],
                "p50_recovery_time_minutes": _minutes(p50),
                "p95_recovery_time_minutes": _minutes(p95),
                "admin_notifications": row["admin_notifications"],
                "success_rate": _success_rate(row),
            }
        )
    result.sort(key=lambda r: (_neg_date(r["date"]), r["issue_type"], r["recovery_action"]))
    return result


def _neg_date(iso: str) -> int:
    return -date.fromisoformat(iso).toordinal()


def _summary(row: dict[str, Any], p50: float | None, p95: float | None) -> dict[str, Any]:
    return {
        "total_cases": row["total_cases"],
        "successful_recoveries": row["successful_recoveries"],
        "failed_recoveries": row["failed_recoveries"],
        "skipped_recoveries": row["skipped_recoveries"],
        "manual_interventions": row["manual_required"],
        "success_rate": _success_rate(row),
        "avg_recovery_time_minutes": _minutes(row["avg_recovery_seconds"]),
        "p50_recovery_time_minutes": _minutes(p50),
        "p95_recovery_time_minutes": _minutes(p95),
        "admin_notifications": row["admin_notifications"],
    }


def statistics_by_vendor(*, days: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per vendor the order was stuck with (``previous_vendor``): success rate
    (percent of attempted) and recovery percentiles. ``vendor_id`` is None for
    orders that had no vendor. Worst success rate first."""
    now = now or timezone.now()
    healings = _healings_in_window(days=days, now=now).annotate(
        vendor_name=F("previous_vendor__name")
    )
    result = [
        {"vendor_id": vendor_id, "vendor_name": name, **_summary(row, p50, p95)}
        for (vendor_id, name), row, (p50, p95), _ in _grouped(
            healings, ("previous_vendor_id", "vendor_name")
        )
    ]
    result.sort(
        key=lambda r: (
            r["success_rate"] if r["success_rate"] is not None else math.inf,
            r["vendor_id"] or 0,
        )
    )
    return result


def statistics_by_issue_type(*, days: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per issue type: success rate (percent of attempted) and recovery percentiles."""
    now = now or timezone.now()
    healings = _healings_in_window(days=days, now=now)
    result = [
        {"issue_type": issue_type, **_summary(row, p50, p95)}
        for (issue_type,), row, (p50, p95), _ in _grouped(healings, ("issue_type",))
    ]
    result.sort(key=lambda r: r["issue_type"])
    return result


# --- KPIs ----------------------------------------------------------------------


@dataclass(frozen=True)
class KpiTarget:
    name: str
    target: float
    comparison: str  # "gt" or "lt": the value must be strictly above / below
    unit: str
    definition: str


KPI_TARGETS: tuple[KpiTarget, ...] = (
    KpiTarget(
        "healing_success_rate",
        90.0,
        "gt",
        "percent",
        "SUCCESS / (SUCCESS + FAILED + MANUAL_REQUIRED) of healings detected in the window",
    ),
    KpiTarget(
        "avg_recovery_time_minutes",
        5.0,
        "lt",
        "minutes",
        "mean of completed_at - issue_detected_at over SUCCESS healings detected in the window",
    ),
    KpiTarget(
        "manual_intervention_rate",
        10.0,
        "lt",
        "percent",
        "MANUAL_REQUIRED / (SUCCESS + FAILED + MANUAL_REQUIRED) of healings detected in the window",
    ),
    KpiTarget(
        "admin_notification_rate",
        5.0,
        "lt",
        "percent",
        "healings that paged an admin (admin_notified) / all healings detected in the window",
    ),
)


def kpis_evaluate(*, days: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """The seed's four KPIs for the last ``days`` days, each against its target.

    Denominators, over the healings whose ``issue_detected_at`` is in the
    window (see the module docstring):

    - ``healing_success_rate`` (target > 90 %): SUCCESS / attempted, where
      attempted = SUCCESS + FAILED + MANUAL_REQUIRED (DESIGN.md "Success").
    - ``avg_recovery_time_minutes`` (target < 5): mean of completed - detected
      over the SUCCESS healings.
    - ``manual_intervention_rate`` (target < 10 %): MANUAL_REQUIRED / attempted.
    - ``admin_notification_rate`` (target < 5 %): healings with
      ``admin_notified`` (a HEALING_FAILED or MANUAL_INTERVENTION_REQUIRED
      notification) / every healing detected, SKIPPED and active included —
      the share of detected stuck cases that needed a human.

    A KPI with an empty denominator has ``value`` None and ``met`` None
    (nothing to judge), so an idle day is not reported as a failure. A value
    exactly on its target is *not* met: the seed's targets are strict.
    """
    now = now or timezone.now()
    row = _healings_in_window(days=days, now=now).aggregate(**outcome_counts())
    attempted = row["successful_recoveries"] + row["failed_recoveries"] + row["manual_required"]
    values: dict[str, float | None] = {
        "healing_success_rate": _rate(row["successful_recoveries"], attempted),
        "avg_recovery_time_minutes": _minutes(row["avg_recovery_seconds"]),
        "manual_intervention_rate": _rate(row["manual_required"], attempted),
        "admin_notification_rate": _rate(row["admin_notifications"], row["total_cases"]),
    }
    denominators = {
        "healing_success_rate": attempted,
        "avg_recovery_time_minutes": row["successful_recoveries"],
        "manual_intervention_rate": attempted,
        "admin_notification_rate": row["total_cases"],
    }
    return [
        {
            "name": kpi.name,
            "value": values[kpi.name],
            "target": kpi.target,
            "comparison": kpi.comparison,
            "unit": kpi.unit,
            "met": kpi_met(values[kpi.name], target=kpi.target, comparison=kpi.comparison),
            "sample_size": denominators[kpi.name],
            "definition": kpi.definition,
        }
        for kpi in KPI_TARGETS
    ]


def kpi_met(value: float | None, *, target: float, comparison: str) -> bool | None:
    if value is None:
        return None
    if comparison == "gt":
        return value > target
    if comparison == "lt":
        return value < target
    raise ValueError(f"unknown comparison {comparison!r}")


# --- Stuck right now ---------------------------------------------------------------


@dataclass(frozen=True)
class StuckNow:
    status: str
    count: int
    oldest_minutes: int | None


def stuck_orders_summary(
    *, now: datetime | None = None, rules: Iterable[StuckRule] | None = None
) -> list[StuckNow]:
    """Per enabled rule: orders past its threshold now, and the oldest one's age.

    Counts every stuck order, being healed or not (the gauge operators watch).
    One query per rule on ``orders_open_stuck_idx``: its cost grows with the
    number of stuck orders, not with the orders table.
    """
    now = now or timezone.now()
    if rules is None:
        rules = StuckRule.objects.filter(enabled=True).order_by("threshold_minutes")
    out = []
    for rule in rules:
        cutoff = now - timedelta(minutes=rule.threshold_minutes)
        agg = Order.objects.filter(status=rule.status, stuck_since__lt=cutoff).aggregate(
            n=Count("id"), oldest=Min("stuck_since")
        )
        oldest = agg["oldest"]
        out.append(
            StuckNow(
                status=rule.status,
                count=agg["n"],
                oldest_minutes=None
                if oldest is None
                else int((now - oldest).total_seconds() // 60),
            )
        )
    return out
