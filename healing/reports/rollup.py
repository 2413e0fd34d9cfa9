"""The daily roll-up: ``healing_metrics`` recomputed from the rows (invariant 9).

``healing_metrics`` is a cache. Each row is recomputed from scratch from
``healing_actions`` (plus ``healing_cycles`` and ``admin_notifications``) and
upserted on ``metric_date``, so running the roll-up twice, concurrently, or
from ``rebuild_metrics`` gives the same row. The healing transaction never
writes here (docs/DECISIONS.md "Metrics are a rollup"): no shared counter row is
locked by the hot path.

A healing counts on the UTC day it was detected (``issue_detected_at``). A
healing detected before the window that finished inside it (a healing
detected at 23:59 that completes at 00:01) also gets its day recomputed, so
no outcome is lost at midnight.

``oldest_stuck_minutes`` and ``orders_stuck_now`` are snapshots: they are
written into today's row only; a past day keeps the last snapshot taken that
day (they cannot be derived from rows afterwards).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import reduce
from operator import or_
from typing import Any, cast

from django.db import models, transaction
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from healing.models import (
    CycleStatus,
    HealingAction,
    HealingCycle,
    HealingMetric,
    IssueType,
    RecoveryAction,
)
from healing.reports.kpis import row_success_rate
from healing.reports.measures import (
    day_bounds,
    outcome_counts,
    recovery_percentiles,
    window_start,
)
from healing.reports.statistics import stuck_orders_summary
from notifications.models import AdminNotification

logger = logging.getLogger("healing.reports.rollup")

_DETECTED_COLUMN = {
    IssueType.STUCK_PENDING: "stuck_pending_detected",
    IssueType.STUCK_CONFIRMED: "stuck_confirmed_detected",
    IssueType.STUCK_ACCEPTED: "stuck_accepted_detected",
    IssueType.STUCK_PROCESSING: "stuck_processing_detected",
}
_ACTION_COLUMN = {
    RecoveryAction.REASSIGN_VENDOR: "reassign_vendor_count",
    RecoveryAction.RETRY_WORKFLOW: "retry_workflow_count",
    RecoveryAction.CANCEL_ORDER: "cancel_order_count",
    RecoveryAction.MANUAL_INTERVENTION: "manual_intervention_count",
}
# Every column the roll-up owns (the upsert overwrites exactly these).
ROLLUP_FIELDS: tuple[str, ...] = (
    "total_stuck_orders_detected",
    *_DETECTED_COLUMN.values(),
    "successful_recoveries",
    "failed_recoveries",
    "skipped_recoveries",
    "manual_interventions",
    *_ACTION_COLUMN.values(),
    "notifications_raised",
    "avg_recovery_time_seconds",
    "p50_recovery_time_seconds",
    "p95_recovery_time_seconds",
    "healing_success_rate",
    "cycles_run",
    "last_cycle_duration_seconds",
    "oldest_stuck_minutes",
    "orders_stuck_now",
    "updated_at",
)


def _days_query(field: str, days: list[date]) -> Q:
    """``field`` inside any of ``days``: one index range per day."""
    ranges = []
    for day in days:
        start, end = day_bounds(day)
        ranges.append(Q(**{f"{field}__gte": start, f"{field}__lt": end}))
    return reduce(or_, ranges)


def _dates_to_recompute(*, days: int, now: datetime) -> list[date]:
    today = timezone.localdate(now)
    dates = {today - timedelta(days=n) for n in range(days)}
    start = window_start(days=days, now=now)
    # Outcomes that landed in the window for healings detected before it.
    late = (
        HealingAction.objects.filter(completed_at__gte=start, issue_detected_at__lt=start)
        .annotate(day=TruncDate("issue_detected_at"))
        .order_by()
        .values_list("day", flat=True)
        .distinct()
    )
    dates.update(late)
    return sorted(dates)


def _healing_counts(
    dates: list[date],
) -> tuple[dict[date, dict[str, Any]], dict[tuple[Any, ...], tuple[float | None, float | None]]]:
    """Per day of ``dates``: the healings' outcome, issue and action counts, and
    their recovery-time percentiles."""
    healings = HealingAction.objects.filter(_days_query("issue_detected_at", dates)).annotate(
        day=TruncDate("issue_detected_at")
    )
    extra: dict[str, Any] = {
        column: Count("id", filter=Q(issue_type=issue))
        for issue, column in _DETECTED_COLUMN.items()
    }
    extra.update(
        {
            column: Count("id", filter=Q(recovery_action=action))
            for action, column in _ACTION_COLUMN.items()
        }
    )
    day_rows = cast(
        "list[dict[str, Any]]",
        list(healings.order_by().values("day").annotate(**outcome_counts(), **extra)),
    )
    by_day = {row["day"]: row for row in day_rows}
    return by_day, recovery_percentiles(healings, group_by=("day",))


def _rows_per_day(model: type[models.Model], field: str, dates: list[date]) -> dict[date, int]:
    """How many rows of ``model`` have ``field`` on each of ``dates``."""
    return dict(
        model._default_manager.filter(_days_query(field, dates))
        .annotate(day=TruncDate(field))
        .order_by()
        .values_list("day")
        .annotate(n=Count("id"))
    )


def _counts_apply(metric: HealingMetric, counts: dict[str, Any]) -> None:
    metric.total_stuck_orders_detected = counts["total_cases"]
    for column in (*_DETECTED_COLUMN.values(), *_ACTION_COLUMN.values()):
        setattr(metric, column, counts[column])
    metric.successful_recoveries = counts["successful_recoveries"]
    metric.failed_recoveries = counts["failed_recoveries"]
    metric.skipped_recoveries = counts["skipped_recoveries"]
    metric.manual_interventions = counts["manual_required"]
    metric.avg_recovery_time_seconds = counts["avg_recovery_seconds"]
    rate = row_success_rate(counts)
    metric.healing_success_rate = None if rate is None else Decimal(f"{rate:.2f}")


def _last_cycle_seconds(day: date) -> float | None:
    """How long the day's last finished cycle took."""
    start, end = day_bounds(day)
    last_ms = (
        HealingCycle.objects.filter(
            started_at__gte=start, started_at__lt=end, status=CycleStatus.FINISHED
        )
        .order_by("-started_at", "-id")
        .values_list("duration_ms", flat=True)
        .first()
    )
    return None if last_ms is None else last_ms / 1000.0


def metrics_compute(*, dates: list[date], now: datetime) -> list[HealingMetric]:
    """Unsaved ``HealingMetric`` rows for ``dates``, computed from the rows."""
    if not dates:
        return []
    by_day, percentiles = _healing_counts(dates)
    notifications = _rows_per_day(AdminNotification, "created_at", dates)
    cycles = _rows_per_day(HealingCycle, "started_at", dates)
    today = timezone.localdate(now)
    existing = {
        m.metric_date: m
        for m in HealingMetric.objects.filter(metric_date__in=dates).only(
            "metric_date", "oldest_stuck_minutes", "orders_stuck_now"
        )
    }
    snapshot: tuple[int | None, int | None] | None = None
    if today in dates:
        stuck = stuck_orders_summary(now=now)
        ages = [s.oldest_minutes for s in stuck if s.oldest_minutes is not None]
        snapshot = (max(ages) if ages else None, sum(s.count for s in stuck))

    rows = []
    for day in dates:
        counts = by_day.get(day)
        metric = HealingMetric(metric_date=day)
        if counts:
            _counts_apply(metric, counts)
        metric.p50_recovery_time_seconds, metric.p95_recovery_time_seconds = percentiles.get(
            (day,), (None, None)
        )
        metric.notifications_raised = notifications.get(day, 0)
        metric.cycles_run = cycles.get(day, 0)
        metric.last_cycle_duration_seconds = _last_cycle_seconds(day)
        if day == today and snapshot is not None:
            metric.oldest_stuck_minutes, metric.orders_stuck_now = snapshot
        elif day in existing:
            metric.oldest_stuck_minutes = existing[day].oldest_stuck_minutes
            metric.orders_stuck_now = existing[day].orders_stuck_now
        rows.append(metric)
    return rows


def metrics_upsert(rows: list[HealingMetric]) -> list[HealingMetric]:
    """One ``INSERT ... ON CONFLICT (metric_date) DO UPDATE`` for all rows.

    Rows go in date order, so two concurrent roll-ups lock the same rows in
    the same order and cannot deadlock.
    """
    if not rows:
        return []
    rows = sorted(rows, key=lambda m: m.metric_date)
    with transaction.atomic():
        HealingMetric.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["metric_date"],
            update_fields=list(ROLLUP_FIELDS),
        )
    return list(
        HealingMetric.objects.filter(metric_date__in=[m.metric_date for m in rows]).order_by(
            "metric_date"
        )
    )


def metrics_rollup(*, days: int = 1, now: datetime | None = None) -> list[HealingMetric]:
    """Recompute and upsert one ``healing_metrics`` row per day of the last ``days``.

    Idempotent: the rows depend only on the source rows and ``now``.
    ``days=1`` is today (plus any earlier day whose healings finished today).
    Returns the rows, oldest first.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    now = now or timezone.now()
    dates = _dates_to_recompute(days=days, now=now)
    return metrics_upsert(metrics_compute(dates=dates, now=now))


def metrics_rollup_after_cycle(*, cycle_id: int | None = None) -> None:
    """The end-of-cycle roll-up. A failure here is logged, never fails the
    cycle: the cycle's work is committed and the next minute's roll-up
    recomputes the same rows."""
    try:
        metrics_rollup(days=1)
    except Exception:
        logger.exception("metrics roll-up after the cycle failed", extra={"cycle_id": cycle_id})
