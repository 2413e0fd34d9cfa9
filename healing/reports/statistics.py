"""Statistics for operators: per day, per vendor, per issue type, and the
"stuck right now" snapshot.

Definitions (window, recovery time, attempts) are ``healing.reports.measures``'s;
the success rate is ``healing.reports.kpis.success_rate``; "stuck" is
``healing.detection``'s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db.models import Count, F, Min, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from healing.detection import orders_past_threshold, rules_enabled
from healing.models import HealingAction, StuckRule
from healing.reports.kpis import row_success_rate
from healing.reports.measures import (
    healings_in_window,
    minutes,
    outcome_counts,
    recovery_percentiles,
)


def _grouped(
    healings: QuerySet[HealingAction], group_by: Sequence[str]
) -> list[tuple[tuple[Any, ...], dict[str, Any], tuple[float | None, float | None]]]:
    rows = healings.order_by().values(*group_by).annotate(**outcome_counts())
    percentiles = recovery_percentiles(healings, group_by=group_by)
    out = []
    for row in rows:
        key = tuple(row[k] for k in group_by)
        out.append((key, row, percentiles.get(key, (None, None))))
    return out


def _summary(row: dict[str, Any], p50: float | None, p95: float | None) -> dict[str, Any]:
    return {
        "total_cases": row["total_cases"],
        "successful_recoveries": row["successful_recoveries"],
        "failed_recoveries": row["failed_recoveries"],
        "skipped_recoveries": row["skipped_recoveries"],
        "manual_interventions": row["manual_required"],
        "success_rate": row_success_rate(row),
        "avg_recovery_time_minutes": minutes(row["avg_recovery_seconds"]),
        "p50_recovery_time_minutes": minutes(p50),
        "p95_recovery_time_minutes": minutes(p95),
        "admin_notifications": row["admin_notifications"],
    }


def statistics_daily(*, days: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per (day, issue type, recovery action, recovery status) of the
    last ``days`` days, grouped as the seed's ``healing_statistics_view`` is.

    The seed's keys (``issue_type``, ``recovery_action``, ``recovery_status``,
    ``total_cases``, ``avg_recovery_time_minutes``, ``successful_recoveries``,
    ``failed_recoveries``) plus ``date``, ``skipped_recoveries``,
    ``manual_interventions``, ``active``, ``p50_recovery_time_minutes``,
    ``p95_recovery_time_minutes``, ``admin_notifications`` (healings that
    paged an admin) and ``success_rate`` (percent of attempted).

    A row's ``recovery_status`` is the status of every healing it counts, so
    it is never a vote: 2 successes and 2 failures are a SUCCESS row of 2 and
    a FAILED row of 2. ``total_cases`` counts every healing detected, active
    ones included (their own PENDING / IN_PROGRESS rows). Sum the rows of a
    day (the dashboard does) for a day's totals and its success rate.
    Ordered newest day first, then by issue type, action and status.
    """
    now = now or timezone.now()
    healings = healings_in_window(days=days, now=now).annotate(date=TruncDate("issue_detected_at"))
    result = []
    for (day, issue_type, action, status), row, (p50, p95) in _grouped(
        healings, ("date", "issue_type", "recovery_action", "recovery_status")
    ):
        summary = _summary(row, p50, p95)
        result.append(
            {
                "date": day.isoformat(),
                "issue_type": issue_type,
                "recovery_action": action,
                "recovery_status": status,
                "total_cases": summary["total_cases"],
                "avg_recovery_time_minutes": summary["avg_recovery_time_minutes"],
                "successful_recoveries": summary["successful_recoveries"],
                "failed_recoveries": summary["failed_recoveries"],
                "skipped_recoveries": summary["skipped_recoveries"],
                "manual_interventions": summary["manual_interventions"],
                "active": row["active"],
                "p50_recovery_time_minutes": summary["p50_recovery_time_minutes"],
                "p95_recovery_time_minutes": summary["p95_recovery_time_minutes"],
                "admin_notifications": summary["admin_notifications"],
                "success_rate": summary["success_rate"],
            }
        )
    result.sort(
        key=lambda r: (
            _neg_date(r["date"]),
            r["issue_type"],
            r["recovery_action"],
            r["recovery_status"],
        )
    )
    return result


def _neg_date(iso: str) -> int:
    return -date.fromisoformat(iso).toordinal()


def statistics_by_vendor(*, days: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per vendor the order was stuck with (``previous_vendor``): success rate
    (percent of attempted) and recovery percentiles. ``vendor_id`` is None for
    orders that had no vendor. Worst success rate first."""
    now = now or timezone.now()
    healings = healings_in_window(days=days, now=now).annotate(
        vendor_name=F("previous_vendor__name")
    )
    result = [
        {"vendor_id": vendor_id, "vendor_name": name, **_summary(row, p50, p95)}
        for (vendor_id, name), row, (p50, p95) in _grouped(
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
    healings = healings_in_window(days=days, now=now)
    result = [
        {"issue_type": issue_type, **_summary(row, p50, p95)}
        for (issue_type,), row, (p50, p95) in _grouped(healings, ("issue_type",))
    ]
    result.sort(key=lambda r: r["issue_type"])
    return result


# --- Stuck right now ---------------------------------------------------------------


@dataclass(frozen=True)
class StuckNow:
    status: str
    count: int
    oldest_seconds: int | None

    @property
    def oldest_minutes(self) -> int | None:
        return None if self.oldest_seconds is None else self.oldest_seconds // 60


def stuck_orders_summary(
    *, now: datetime | None = None, rules: Iterable[StuckRule] | None = None
) -> list[StuckNow]:
    """Per enabled rule: orders past its threshold now, and the oldest one's age.

    Counts every order past the threshold, being healed or not (the gauge
    operators watch), with detection's own threshold query
    (``healing.detection``, orders_open_stuck_idx): its cost grows with the
    number of stuck orders, not with the orders table.
    """
    now = now or timezone.now()
    rules = rules_enabled() if rules is None else rules
    out = []
    for rule in rules:
        agg = (
            orders_past_threshold(rule=rule, now=now)
            .order_by()
            .aggregate(n=Count("id"), oldest=Min("stuck_since"))
        )
        oldest = agg["oldest"]
        out.append(
            StuckNow(
                status=rule.status,
                count=agg["n"],
                oldest_seconds=None if oldest is None else int((now - oldest).total_seconds()),
            )
        )
    return out
