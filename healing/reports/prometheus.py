"""Prometheus ``/metrics``: series computed from the database on each scrape.

Why from the database and not in-process counters: the web runs as several
gunicorn workers on several machines and the healings happen in Celery
workers. Counters kept in process memory would show one process's share (or
need prometheus multiprocess mode and a shared directory per machine). Rows
in PostgreSQL are the single source of truth (invariant 9), so any worker
answers a scrape with the same, complete numbers.

Counters only ever go up: each counts rows by a timestamp that is written
once, together with the state the counter counts, and never changes after:

- detections by ``issue_detected_at`` (the healing row's creation);
- outcomes and the recovery histogram by ``completed_at`` (written in the
  same UPDATE that makes the healing final);
- notifications by ``created_at``;
- cycles by ``started_at``, *finished* cycles only (FINISHED, FAILED,
  ABANDONED); a RUNNING cycle is the ``healing_cycle_running`` gauge.

Every query is bounded and indexed:

- counters and histograms = a *closed* part, rows stamped before 00:00 UTC
  yesterday, computed once per day and kept in the cache (Redis in
  production, shared by all workers), plus a *live* part, the last one to two
  days, an index range scan (``healing_detected_idx``,
  ``healing_completed_idx``, ``notification_created_idx``,
  ``healing_cycle_started_idx``). The closed part cannot change once its
  day is over, so a worker that computes it later (or after an eviction)
  gets the same numbers, and scrapes never stutter between workers;
- gauges read partial indexes: stuck orders per rule (``orders_open_stuck_idx``),
  active healings (``healing_status_idx``), pending notifications
  (``notification_pending_idx``), the last cycle (``healing_cycle_started_idx``).

(The only lag: a cycle that started before yesterday and was still running
when the closed part was computed is counted from the next day on.)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, cast

from django.core.cache import cache
from django.db.models import Count, F, Q, QuerySet, Sum
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from api.throttles import CACHE_ERRORS
from healing.models import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    CycleStatus,
    HealingAction,
    HealingCycle,
    IssueType,
    RecoveryAction,
    RecoveryStatus,
)
from healing.reports.measures import recovery_seconds, window_start
from healing.reports.prometheus_vendors import VendorCircuitCollector
from healing.reports.statistics import stuck_orders_summary
from notifications.models import AdminNotification, NotificationType, Severity
from notifications.selectors import notifications_list

logger = logging.getLogger("healing")

# Recovery time (completed - detected of SUCCESS healings), seconds. The
# seed's target is 5 minutes; the cycle runs every 5 minutes.
RECOVERY_BUCKETS: tuple[float, ...] = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
# Healing cycle duration, seconds.
CYCLE_BUCKETS: tuple[float, ...] = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
CLOSED_CACHE_SECONDS = 2 * 24 * 3600
_CACHE_PREFIX = "healing:prometheus:closed:v3"

Counts = dict[str, dict[tuple[Any, ...], float]]


# --- Counting one slice of history -------------------------------------------


def _detection_counts(healings: QuerySet[HealingAction]) -> Counts:
    detections = healings.order_by().values_list("issue_type").annotate(n=Count("id"))
    return {"detections": {(issue_type,): n for issue_type, n in detections}}


def _outcome_counts(completed: QuerySet[HealingAction]) -> Counts:
    """Final outcomes and the recovery histogram of healings completed in the slice."""
    outcomes = (
        completed.filter(recovery_status__in=FINAL_STATUSES)
        .order_by()
        .values_list("recovery_action", "recovery_status")
        .annotate(n=Count("id"))
    )
    bucket_counts = {
        f"le_{i}": Count(
            "id", filter=Q(completed_at__lte=F("issue_detected_at") + timedelta(seconds=bound))
        )
        for i, bound in enumerate(RECOVERY_BUCKETS)
    }
    histogram = (
        completed.filter(recovery_status=RecoveryStatus.SUCCESS)
        .order_by()
        .values("recovery_action")
        .annotate(count=Count("id"), sum=Sum(recovery_seconds()), **bucket_counts)
    )
    out: Counts = {"healings": {}, "recovery": {}}
    for action, status, n in outcomes:
        out["healings"][(action, status)] = n
    rows = cast("list[dict[str, Any]]", list(histogram))
    for row in rows:
        action = row["recovery_action"]
        out["recovery"][(action, "count")] = row["count"]
        out["recovery"][(action, "sum")] = row["sum"] or 0.0
        for i in range(len(RECOVERY_BUCKETS)):
            out["recovery"][(action, i)] = row[f"le_{i}"]
    return out


def _notification_counts(notifications: QuerySet[AdminNotification]) -> Counts:
    rows = (
        notifications.order_by()
        .values_list("severity", "notification_type")
        .annotate(n=Count("id"))
    )
    return {"notifications": {(severity, kind): n for severity, kind, n in rows}}


def _cycle_counts(cycles: QuerySet[HealingCycle]) -> Counts:
    by_status = (
        cycles.exclude(status=CycleStatus.RUNNING)
        .order_by()
        .values_list("status")
        .annotate(n=Count("id"))
    )
    finished = cycles.filter(status=CycleStatus.FINISHED, duration_ms__isnull=False)
    durations = finished.aggregate(
        count=Count("id"),
        sum=Sum("duration_ms"),
        **{
            f"le_{i}": Count("id", filter=Q(duration_ms__lte=bound * 1000))
            for i, bound in enumerate(CYCLE_BUCKETS)
        },
    )
    out: Counts = {"cycles": {(status,): n for status, n in by_status}, "cycle_duration": {}}
    out["cycle_duration"][("count",)] = durations["count"]
    out["cycle_duration"][("sum",)] = (durations["sum"] or 0.0) / 1000.0
    for i in range(len(CYCLE_BUCKETS)):
        out["cycle_duration"][(i,)] = durations[f"le_{i}"]
    return out


def _slice(*, before: datetime | None = None, since: datetime | None = None) -> Counts:
    """Counts of the rows stamped in ``[since, before)``, each by its own stamp."""

    def stamped(queryset: QuerySet[Any], field: str) -> QuerySet[Any]:
        if before is not None:
            queryset = queryset.filter(**{f"{field}__lt": before})
        if since is not None:
            queryset = queryset.filter(**{f"{field}__gte": since})
        return queryset

    return {
        **_detection_counts(stamped(HealingAction.objects.all(), "issue_detected_at")),
        **_outcome_counts(stamped(HealingAction.objects.all(), "completed_at")),
        **_notification_counts(stamped(AdminNotification.objects.all(), "created_at")),
        **_cycle_counts(stamped(HealingCycle.objects.all(), "started_at")),
    }


def _merge(a: Counts, b: Counts) -> Counts:
    out: Counts = {}
    for family in a.keys() | b.keys():
        merged = dict(a.get(family, {}))
        for key, value in b.get(family, {}).items():
            merged[key] = merged.get(key, 0) + value
        out[family] = merged
    return out


def closed_counts(*, now: datetime) -> tuple[datetime, Counts]:
    """The totals before 00:00 UTC yesterday, from the cache or computed once."""
    boundary = window_start(days=2, now=now)
    key = f"{_CACHE_PREFIX}:{boundary.date().isoformat()}"
    try:
        closed = cache.get(key)
    except CACHE_ERRORS as exc:
        # Fail open, as the API's caches do: a scrape answers from PostgreSQL.
        logger.warning("metrics cache unavailable, closed days computed uncached: %s", exc)
        return boundary, _slice(before=boundary)
    if closed is None:
        closed = _slice(before=boundary)
        try:
            cache.set(key, closed, CLOSED_CACHE_SECONDS)
        except CACHE_ERRORS as exc:
            logger.warning("metrics cache unavailable, closed days not stored: %s", exc)
    return boundary, closed


def scrape_cache_warm(*, now: datetime | None = None) -> None:
    """Called by the minute roll-up task: the once-a-day scan of the closed
    days runs in a worker, not inside a Prometheus scrape and its timeout."""
    closed_counts(now=now or timezone.now())


def cumulative_counts(*, now: datetime) -> Counts:
    """Totals since the beginning: cached closed days + the live window."""
    boundary, closed = closed_counts(now=now)
    return _merge(closed, _slice(since=boundary))


# --- The collector ---------------------------------------------------------------


class HealingCollector:
    """A custom collector: reads the database when Prometheus scrapes."""

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        counts = cumulative_counts(now=now)
        yield from self._healing_counters(counts)
        yield from self._cycle_counters(counts)
        yield from self._gauges(now)

    def _healing_counters(self, counts: Counts) -> Iterator[Metric]:
        """Detections, outcomes, recovery times and notifications since the start."""
        detections = CounterMetricFamily(
            "healing_detections",
            "Stuck-order detections (healing rows created), by issue type.",
            labels=["issue_type"],
        )
        # Every known label set is exported, zeros included, so alerts and
        # rate() see a series from the first scrape on.
        for issue_type in IssueType.values:
            detections.add_metric([issue_type], counts["detections"].get((issue_type,), 0))
        yield detections

        healings = CounterMetricFamily(
            "healing_healings",
            "Healings that reached a final outcome, by recovery action and outcome.",
            labels=["action", "outcome"],
        )
        for action in RecoveryAction.values:
            for outcome in FINAL_STATUSES:
                healings.add_metric([action, outcome], counts["healings"].get((action, outcome), 0))
        yield healings

        recovery = HistogramMetricFamily(
            "healing_recovery_time_seconds",
            "Recovery time (completed - detected) of SUCCESS healings, by action.",
            labels=["action"],
        )
        observed = counts["recovery"]
        for action in RecoveryAction.values:
            buckets = [
                (_bound(bound), observed.get((action, i), 0))
                for i, bound in enumerate(RECOVERY_BUCKETS)
            ]
            buckets.append(("+Inf", observed.get((action, "count"), 0)))
            recovery.add_metric([action], buckets, sum_value=observed.get((action, "sum"), 0.0))
        yield recovery

        notifications = CounterMetricFamily(
            "healing_admin_notifications",
            "Admin notifications raised, by severity and type.",
            labels=["severity", "type"],
        )
        for severity in Severity.values:
            for kind in NotificationType.values:
                notifications.add_metric(
                    [severity, kind], counts["notifications"].get((severity, kind), 0)
                )
        yield notifications

    def _cycle_counters(self, counts: Counts) -> Iterator[Metric]:
        cycles = CounterMetricFamily(
            "healing_cycles",
            "Healing cycles that ended, by final status (a running one is healing_cycle_running).",
            labels=["status"],
        )
        for status in CycleStatus.values:
            if status == CycleStatus.RUNNING:
                continue
            cycles.add_metric([status], counts["cycles"].get((status,), 0))
        yield cycles

        duration = counts["cycle_duration"]
        yield HistogramMetricFamily(
            "healing_cycle_duration_seconds",
            "Duration of finished healing cycles (detection, recording, dispatch).",
            buckets=[
                *((_bound(bound), duration.get((i,), 0)) for i, bound in enumerate(CYCLE_BUCKETS)),
                ("+Inf", duration.get(("count",), 0)),
            ],
            sum_value=duration.get(("sum",), 0.0),
        )

    def _gauges(self, now: datetime) -> Iterator[Metric]:
        yield from self._stuck_gauges(now)
        yield from self._healing_gauges(now)
        yield from self._notification_gauges()
        yield from self._cycle_gauges()

    def _stuck_gauges(self, now: datetime) -> Iterator[Metric]:
        stuck = GaugeMetricFamily(
            "healing_stuck_orders",
            "Orders past their rule's threshold now (being healed or not), by status.",
            labels=["status"],
        )
        oldest = GaugeMetricFamily(
            "healing_stuck_order_oldest_seconds",
            "Age of the oldest stuck order's stuck clock, seconds, by status.",
            labels=["status"],
        )
        for row in stuck_orders_summary(now=now):
            stuck.add_metric([row.status], row.count)
            oldest.add_metric([row.status], row.oldest_seconds or 0)
        yield stuck
        yield oldest

    def _healing_gauges(self, now: datetime) -> Iterator[Metric]:
        active = GaugeMetricFamily(
            "healing_active_healings",
            "Healings pending or in progress now, by status.",
            labels=["status"],
        )
        by_status = dict(
            HealingAction.objects.filter(recovery_status__in=ACTIVE_STATUSES)
            .order_by()
            .values_list("recovery_status")
            .annotate(n=Count("id"))
        )
        for status in ACTIVE_STATUSES:
            active.add_metric([status], by_status.get(status, 0))
        yield active

        # Issue 16: lost (lease expired, awaiting re-dispatch) and retrying
        # healings, in the one statement the expired count took before.
        machinery = HealingAction.objects.filter(recovery_status__in=ACTIVE_STATUSES).aggregate(
            expired=Count("id", filter=Q(lease_expires_at__lt=now)),
            retrying=Count(
                "id", filter=Q(next_attempt_at__isnull=False, lease_expires_at__gte=now)
            ),
        )
        yield GaugeMetricFamily(
            "healing_expired_leases",
            "Active healings whose lease expired, awaiting re-dispatch (the lease sweeper's).",
            value=machinery["expired"],
        )
        yield GaugeMetricFamily(
            "healing_retrying_healings",
            "Active healings waiting for a scheduled retry (next_attempt_at).",
            value=machinery["retrying"],
        )

    def _notification_gauges(self) -> Iterator[Metric]:
        pending = GaugeMetricFamily(
            "healing_admin_notifications_pending",
            "Pending admin notifications (neither acknowledged nor resolved), by severity.",
            labels=["severity"],
        )
        unacknowledged = dict(
            notifications_list().order_by().values_list("severity").annotate(n=Count("id"))
        )
        for severity in Severity.values:
            pending.add_metric([severity], unacknowledged.get(severity, 0))
        yield pending

    def _cycle_gauges(self) -> Iterator[Metric]:
        last = (
            HealingCycle.objects.filter(status=CycleStatus.FINISHED)
            .order_by("-started_at", "-id")
            .values("duration_ms", "finished_at", "detected", "dispatched")
            .first()
        )
        if last is not None:
            yield GaugeMetricFamily(
                "healing_cycle_last_duration_seconds",
                "Duration of the last finished healing cycle.",
                value=(last["duration_ms"] or 0.0) / 1000.0,
            )
            yield GaugeMetricFamily(
                "healing_cycle_last_finished_timestamp_seconds",
                "When the last healing cycle finished (Unix time); alert when it is stale.",
                value=last["finished_at"].timestamp() if last["finished_at"] else 0.0,
            )
            yield GaugeMetricFamily(
                "healing_cycle_last_detected",
                "Stuck orders the last finished cycle detected.",
                value=last["detected"],
            )
        running = HealingCycle.objects.filter(status=CycleStatus.RUNNING).count()
        yield GaugeMetricFamily(
            "healing_cycle_running", "1 while a healing cycle is running.", value=running
        )


def _bound(bound: float) -> str:
    return str(float(bound))


def metrics_render() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HealingCollector())
    registry.register(VendorCircuitCollector())  # healing.reports.prometheus_vendors
    return generate_latest(registry)
