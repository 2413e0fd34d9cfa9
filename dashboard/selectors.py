"""What the dashboard shows, read through the same selectors as the API.

Stuck orders come from ``healing.detection.stuck_orders_detect``; outcomes,
success rates and KPIs from ``healing.reports`` (``statistics_daily`` and
``kpis_evaluate``, the code behind ``GET /statistics`` and the KPI endpoint),
so a number on the dashboard is the number the API and the seed's SQL give.
Which panels a user gets follows docs/DECISIONS.md "Roles": VIEWER sees the
statistics and KPI panels only.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count
from django.db.models.functions import TruncDate
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from dashboard import panels as operator_panels
from healing.detection import stuck_orders_detect
from healing.models import ISSUE_TYPE_FOR_STATUS, HealingAction, RecoveryStatus
from healing.reports.kpis import kpi_target, kpis_evaluate, success_rate
from healing.reports.measures import recovery_percentiles, window_start
from healing.reports.statistics import statistics_daily
from healing.selectors import cycles_list
from notifications.models import SEVERITY_RANK, Severity
from notifications.selectors import notifications_list
from orders.roles import ADMIN, OPERATIONS

# Stacked in this order, bottom to top.
OUTCOME_KEYS: tuple[tuple[str, str], ...] = (
    ("successful_recoveries", "Success"),
    ("failed_recoveries", "Failed"),
    ("manual_interventions", "Manual required"),
    ("skipped_recoveries", "Skipped"),
    ("active", "In progress"),
)
# The statuses a stuck rule can name (one issue type each).
STUCK_STATUSES: tuple[str, ...] = tuple(ISSUE_TYPE_FOR_STATUS)
# Detection is index-driven but returns rows; a dashboard needs a count, and
# past this many the panel says "at least".
STUCK_COUNT_LIMIT = 10_000
MAX_DAYS = 90
# The admin changelist filtered to what the dashboard calls open (local-field
# lookups, which the admin always allows).
_OPEN = "acknowledged_at__isnull=True&resolved_at__isnull=True"
# ADMIN and OPERATIONS: the engine's state and what it is about to do.
OPERATOR_PANELS = frozenset(
    {"stuck", "notifications", "cycles", "guard", "vendors", "silences", "at_risk"}
)


def panels_for_role(role: str | None) -> frozenset[str]:
    """The panels a role may see; empty for a user without a role."""
    statistics = {"outcomes", "recovery", "success_rate", "kpis"}
    if role in (ADMIN, OPERATIONS):
        return frozenset(statistics | OPERATOR_PANELS)
    if role is not None:
        return frozenset(statistics)
    return frozenset()


def _days(days: int, now: datetime) -> list[date]:
    today = timezone.localdate(now)
    return [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def outcomes_per_day(*, days: int, now: datetime) -> dict[str, Any]:
    """Healing outcomes per day (stacked chart) and the daily success rate.

    Summed from ``statistics_daily`` rows (one per day, issue type and
    action); the success rate is ``healing.reports.kpis.success_rate``, None
    on a day with no attempt, against the KPI table's target.
    """
    labels = [day.isoformat() for day in _days(days, now)]
    totals: dict[str, dict[str, int]] = {label: defaultdict(int) for label in labels}
    for row in statistics_daily(days=days, now=now):
        if row["date"] not in totals:
            continue
        for key, _ in OUTCOME_KEYS:
            totals[row["date"]][key] += row[key] or 0
    rates = [
        success_rate(
            successful=totals[label]["successful_recoveries"],
            failed=totals[label]["failed_recoveries"],
            manual=totals[label]["manual_interventions"],
        )
        for label in labels
    ]
    return {
        "labels": labels,
        "series": [
            {"key": key, "label": label, "data": [totals[day][key] for day in labels]}
            for key, label in OUTCOME_KEYS
        ],
        "success_rate": rates,
        "success_target": kpi_target("healing_success_rate").target,
    }


def recovery_time_trend(*, days: int, now: datetime) -> dict[str, Any]:
    """p50 / p95 recovery time per day, in seconds, of the SUCCESS healings.

    Percentiles cannot be summed from per-group rows, so this asks
    ``healing.reports.measures.recovery_percentiles`` per day over the same window and
    definitions ``statistics_daily`` uses (day of ``issue_detected_at``).
    """
    labels = [day.isoformat() for day in _days(days, now)]
    healings = HealingAction.objects.filter(
        issue_detected_at__gte=window_start(days=days, now=now), issue_detected_at__lte=now
    ).annotate(day=TruncDate("issue_detected_at"))
    by_day = {
        key[0].isoformat(): value
        for key, value in recovery_percentiles(healings, group_by=("day",)).items()
    }

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return {
        "labels": labels,
        "p50_seconds": [rounded(by_day.get(day, (None, None))[0]) for day in labels],
        "p95_seconds": [rounded(by_day.get(day, (None, None))[1]) for day in labels],
    }


def stuck_now(*, now: datetime) -> dict[str, Any]:
    """Orders stuck right now and waiting for a healing, by status (the API's
    stuck-orders list), plus those held for a person."""
    stuck = stuck_orders_detect(now=now, limit=STUCK_COUNT_LIMIT)
    counts = dict.fromkeys(STUCK_STATUSES, 0)
    oldest = 0
    for item in stuck:
        counts[item.status] = counts.get(item.status, 0) + 1
        oldest = max(oldest, item.stuck_minutes)
    on_manual_hold = (
        HealingAction.objects.filter(
            recovery_status=RecoveryStatus.MANUAL_REQUIRED, resolved_at__isnull=True
        )
        .values("order_id")
        .distinct()
        .count()
    )
    return {
        "labels": list(counts),
        "counts": list(counts.values()),
        "total": len(stuck),
        "truncated": len(stuck) >= STUCK_COUNT_LIMIT,
        "oldest_minutes": oldest if stuck else None,
        "on_manual_hold": on_manual_hold,
    }


def _admin_url(name: str, *args: Any) -> str | None:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:  # the model is not registered in the admin
        return None


def open_notifications(*, limit: int = 10) -> dict[str, Any]:
    """Pending notifications (``notifications_list()``'s default, the API's
    list too: neither acknowledged nor resolved): counts by severity and the
    most severe / newest ones, each with its admin link."""
    pending = notifications_list()
    counts = dict(
        pending.order_by()
        .values_list("severity")
        .annotate(n=Count("id"))
        .values_list("severity", "n")
    )
    changelist = _admin_url("admin:notifications_adminnotification_changelist")
    severities = sorted(Severity.values, key=lambda s: -SEVERITY_RANK[s])
    rows = sorted(
        pending.values(
            "id", "severity", "notification_type", "title", "occurrences", "last_occurred_at"
        )[:200],
        key=lambda n: (-SEVERITY_RANK.get(n["severity"], 0), -n["last_occurred_at"].timestamp()),
    )[:limit]
    return {
        "by_severity": [
            {
                "severity": severity,
                "count": counts.get(severity, 0),
                "admin_url": (
                    f"{changelist}?severity__exact={severity}&{_OPEN}" if changelist else None
                ),
            }
            for severity in severities
        ],
        "total": sum(counts.values()),
        "admin_url": f"{changelist}?{_OPEN}" if changelist else None,
        "latest": [
            {
                **row,
                "last_occurred_at": row["last_occurred_at"].isoformat(),
                "admin_url": _admin_url("admin:notifications_adminnotification_change", row["id"]),
            }
            for row in rows
        ],
    }


def _annotated(rows: Any) -> list[Any]:
    """Rows annotated by a selector (``healed_now``, ...), which the model type does not know."""
    return list(rows)


def last_cycles(*, limit: int = 10) -> list[dict[str, Any]]:
    """The newest cycles with their outcomes counted now, as the API's list
    shows them (a cycle's own counters lag while its healings finish)."""
    return [
        {
            "id": cycle.id,
            "started_at": cycle.started_at.isoformat(),
            "trigger": cycle.trigger,
            "status": cycle.status,
            "detected": cycle.detected,
            "dispatched": cycle.dispatched,
            "healed": cycle.healed_now,
            "failed": cycle.failed_now,
            "skipped": cycle.skipped_now,
            "escalated": cycle.escalated_now,
            "guard_tripped": cycle.guard_tripped,
            "duration_ms": cycle.duration_ms,
            "url": reverse("dashboard:cycle", args=[cycle.id]),
        }
        for cycle in _annotated(cycles_list()[:limit])
    ]


def dashboard_data(
    *, role: str | None, days: int = 14, now: datetime | None = None
) -> dict[str, Any]:
    """Everything one dashboard refresh needs, limited to what ``role`` may see."""
    now = now or timezone.now()
    days = max(1, min(days, MAX_DAYS))
    panels = panels_for_role(role)
    data: dict[str, Any] = {
        "generated_at": now.isoformat(),
        "role": role,
        "days": days,
        "panels": sorted(panels),
    }
    if not panels:
        return data
    data["outcomes"] = outcomes_per_day(days=days, now=now)
    data["recovery"] = recovery_time_trend(days=days, now=now)
    data["kpis"] = kpis_evaluate(days=days, now=now)
    if "stuck" in panels:
        data["stuck"] = stuck_now(now=now)
        data["notifications"] = open_notifications()
        data["cycles"] = last_cycles()
        data["guard"] = operator_panels.guard_state()
        data["vendors"] = operator_panels.vendors_panel(now=now)
        data["silences"] = operator_panels.silences_panel(now=now)
        data["at_risk"] = operator_panels.at_risk(now=now)
    return data
