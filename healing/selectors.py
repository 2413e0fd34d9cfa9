"""Reads of the healing engine for the API, the dashboard and notifications."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet
from django_celery_beat.models import PeriodicTask

from healing.models import HealingAction, HealingCycle, RecoveryStatus, StuckRule


def healing_history(*, order_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """An order's earlier healings, newest first, for notification context."""
    rows = (
        HealingAction.objects.filter(order_id=order_id)
        .order_by("-issue_detected_at", "-id")
        .values(
            "id",
            "issue_type",
            "recovery_action",
            "recovery_status",
            "skip_reason",
            "issue_detected_at",
            "completed_at",
            "error_message",
            "retry_count",
            "trigger",
        )[:limit]
    )
    return [dict(row) for row in rows]


# --- Lists for the API and the dashboard ----------------------------------------


def healing_actions_list(
    *,
    order_id: int | None = None,
    recovery_status: str | None = None,
    issue_type: str | None = None,
    recovery_action: str | None = None,
    trigger: str | None = None,
    cycle_id: int | None = None,
    detected_from: datetime | None = None,
    detected_to: datetime | None = None,
) -> QuerySet[HealingAction]:
    rows = HealingAction.objects.select_related("requested_by").order_by(
        "-issue_detected_at", "-id"
    )
    if order_id is not None:
        rows = rows.filter(order_id=order_id)
    if recovery_status:
        rows = rows.filter(recovery_status=recovery_status)
    if issue_type:
        rows = rows.filter(issue_type=issue_type)
    if recovery_action:
        rows = rows.filter(recovery_action=recovery_action)
    if trigger:
        rows = rows.filter(trigger=trigger)
    if cycle_id is not None:
        rows = rows.filter(cycle_id=cycle_id)
    if detected_from is not None:
        rows = rows.filter(issue_detected_at__gte=detected_from)
    if detected_to is not None:
        rows = rows.filter(issue_detected_at__lt=detected_to)
    return rows


def healing_action_get(*, healing_id: int) -> HealingAction | None:
    if not 0 < healing_id < 2**63:
        return None
    return (
        HealingAction.objects.select_related("requested_by", "resolved_by")
        .filter(pk=healing_id)
        .first()
    )


def _with_live_counts(rows: QuerySet[HealingCycle]) -> QuerySet[HealingCycle]:
    """Outcome counts from the cycle's healing rows, as they stand now.

    The cycle row's own counters are written when the cycle ends, before its
    healings finish on the workers; reading them would show stale numbers.
    """

    def count(*statuses: str) -> Count:
        return Count("healings", filter=Q(healings__recovery_status__in=statuses))

    return rows.annotate(
        healed_now=count(RecoveryStatus.SUCCESS),
        failed_now=count(RecoveryStatus.FAILED),
        skipped_now=count(RecoveryStatus.SKIPPED),
        escalated_now=count(RecoveryStatus.MANUAL_REQUIRED),
        pending_now=count(RecoveryStatus.PENDING, RecoveryStatus.IN_PROGRESS),
    )


def cycles_list(*, status: str | None = None, trigger: str | None = None) -> QuerySet[HealingCycle]:
    rows = _with_live_counts(HealingCycle.objects.order_by("-started_at", "-id"))
    if status:
        rows = rows.filter(status=status)
    if trigger:
        rows = rows.filter(trigger=trigger)
    return rows


def cycle_get(*, cycle_id: int) -> HealingCycle | None:
    if not 0 < cycle_id < 2**63:
        return None
    return _with_live_counts(HealingCycle.objects.filter(pk=cycle_id)).first()


def rules_list() -> QuerySet[StuckRule]:
    return StuckRule.objects.order_by("threshold_minutes", "id")


def last_cycle_started_at() -> datetime | None:
    return HealingCycle.objects.aggregate(last=Max("started_at"))["last"]


def cycle_interval_seconds() -> int:
    """The cycle's schedule as beat runs it (editable in the admin), else the setting."""
    task = (
        PeriodicTask.objects.filter(
            task="healing.tasks.run_cycle", enabled=True, interval__isnull=False
        )
        .select_related("interval")
        .first()
    )
    if task is not None and task.interval is not None:
        seconds = task.interval.schedule.run_every.total_seconds()
        if seconds > 0:
            return int(seconds)
    return settings.HEALING_CYCLE_INTERVAL_SECONDS
