"""The seed's four KPIs, the one KPI target table and the one success rate.

Every success rate in the project (statistics rows, the daily roll-up, the
dashboard, the KPI endpoint) is ``success_rate``: SUCCESS / attempted, where
attempted = SUCCESS + FAILED + MANUAL_REQUIRED (docs/DECISIONS.md "Success"), as a
percentage with two decimals, None when nothing was attempted. Every target
is read from ``KPI_TARGETS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from healing.reports.measures import healings_in_window, minutes, outcome_counts


def percent(numerator: int, denominator: int) -> float | None:
    """A percentage 0..100 with two decimals, or None when nothing was counted."""
    if not denominator:
        return None
    return round(100.0 * numerator / denominator, 2)


def attempted(*, successful: int, failed: int, manual: int) -> int:
    """docs/DECISIONS.md "Attempts": SKIPPED and active healings are not attempts."""
    return successful + failed + manual


def success_rate(*, successful: int, failed: int, manual: int) -> float | None:
    """SUCCESS / (SUCCESS + FAILED + MANUAL_REQUIRED) in percent, two decimals."""
    return percent(successful, attempted(successful=successful, failed=failed, manual=manual))


def row_success_rate(row: dict[str, Any]) -> float | None:
    """``success_rate`` of an ``outcome_counts()`` row."""
    return success_rate(
        successful=row["successful_recoveries"],
        failed=row["failed_recoveries"],
        manual=row["manual_required"],
    )


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


def kpi_target(name: str) -> KpiTarget:
    """The target of one KPI by name (``KeyError`` for an unknown one)."""
    for kpi in KPI_TARGETS:
        if kpi.name == name:
            return kpi
    raise KeyError(name)


def kpi_met(value: float | None, *, target: float, comparison: str) -> bool | None:
    if value is None:
        return None
    if comparison == "gt":
        return value > target
    if comparison == "lt":
        return value < target
    raise ValueError(f"unknown comparison {comparison!r}")


def kpis_evaluate(*, days: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """The seed's four KPIs for the last ``days`` days, each against its target.

    Denominators, over the healings whose ``issue_detected_at`` is in the
    window (see ``healing.reports.measures``):

    - ``healing_success_rate`` (target > 90 %): ``success_rate``.
    - ``avg_recovery_time_minutes`` (target < 5): mean of completed - detected
      over the SUCCESS healings. ``value`` has two decimals of a minute, as
      the seed's key says; ``value_seconds`` (three decimals) is the same
      mean for displays that show seconds (a 0.26 s mean is 0.0 minutes).
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
    row = healings_in_window(days=days, now=now).aggregate(**outcome_counts())
    tried = attempted(
        successful=row["successful_recoveries"],
        failed=row["failed_recoveries"],
        manual=row["manual_required"],
    )
    seconds = row["avg_recovery_seconds"]
    values: dict[str, float | None] = {
        "healing_success_rate": row_success_rate(row),
        "avg_recovery_time_minutes": minutes(seconds),
        "manual_intervention_rate": percent(row["manual_required"], tried),
        "admin_notification_rate": percent(row["admin_notifications"], row["total_cases"]),
    }
    denominators = {
        "healing_success_rate": tried,
        "avg_recovery_time_minutes": row["successful_recoveries"],
        "manual_intervention_rate": tried,
        "admin_notification_rate": row["total_cases"],
    }
    out = []
    for kpi in KPI_TARGETS:
        item: dict[str, Any] = {
            "name": kpi.name,
            "value": values[kpi.name],
            "target": kpi.target,
            "comparison": kpi.comparison,
            "unit": kpi.unit,
            "met": kpi_met(values[kpi.name], target=kpi.target, comparison=kpi.comparison),
            "sample_size": denominators[kpi.name],
            "definition": kpi.definition,
        }
        if kpi.unit == "minutes":
            item["value_seconds"] = None if seconds is None else round(seconds, 3)
        out.append(item)
    return out
