"""Reads of admin notifications and of the system conditions the sweep watches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Exists, F, Max, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce
from django_celery_beat.models import PeriodicTask

from healing.models import ATTEMPT_STATUSES, HealingAction, HealingCycle, RecoveryStatus
from notifications.models import AdminNotification, DeliveryStatus, NotificationDelivery
from notifications.policy import RENOTIFY_SEVERITIES
from orders.models import TERMINAL_STATUSES

# Periodic jobs work on bounded batches: whatever is left waits a minute.
SWEEP_BATCH = 500


def notifications_list(
    *,
    acknowledged: bool | None = False,
    resolved: bool | None = None,
    severity: str | None = None,
    notification_type: str | None = None,
) -> QuerySet[AdminNotification]:
    """Notifications, newest first. The default is the seed's "pending": not acknowledged."""
    queryset = AdminNotification.objects.select_related(
        "order", "healing_action", "acknowledged_by", "resolved_by"
    ).order_by("-created_at", "-id")
    if acknowledged is not None:
        queryset = queryset.filter(acknowledged_at__isnull=not acknowledged)
    if resolved is not None:
        queryset = queryset.filter(resolved_at__isnull=not resolved)
    if severity:
        queryset = queryset.filter(severity=severity)
    if notification_type:
        queryset = queryset.filter(notification_type=notification_type)
    return queryset


def notification_deliveries(*, notification_id: int, round: int) -> list[NotificationDelivery]:
    return list(
        NotificationDelivery.objects.filter(notification_id=notification_id, round=round).order_by(
            "id"
        )
    )


# --- What the sweep acts on ---------------------------------------------------------


def notifications_recovered(*, limit: int = SWEEP_BATCH) -> list[tuple[int, str, int, str]]:
    """Open order notifications whose order finished or left the stuck episode.

    (id, notification type, order id, order status). The episode is the one the
    latest healing detected: a status change or a restarted stuck clock since
    then is a recovery.
    """
    finished = Q(order__status__in=TERMINAL_STATUSES)
    moved_on = Q(healing_action__isnull=False) & (
        ~Q(order__status=F("healing_action__detected_status"))
        | Q(order__stuck_since__gt=F("healing_action__episode_started_at"))
    )
    no_healing = Q(healing_action__isnull=True, order__stuck_since__gt=F("created_at"))
    return list(
        AdminNotification.objects.filter(resolved_at__isnull=True, order__isnull=False)
        .filter(finished | moved_on | no_healing)
        .order_by("id")
        .values_list("id", "notification_type", "order_id", "order__status")[:limit]
    )


def notifications_due_for_renotify(*, now: datetime) -> QuerySet[AdminNotification]:
    """Unacknowledged CRITICAL / HIGH notifications whose last round is an interval old."""
    due_before = now - timedelta(minutes=settings.NOTIFICATION_RENOTIFY_INTERVAL_MINUTES)
    return (
        AdminNotification.objects.filter(
            acknowledged_at__isnull=True,
            resolved_at__isnull=True,
            severity__in=RENOTIFY_SEVERITIES,
            renotify_count__lt=settings.NOTIFICATION_RENOTIFY_LIMIT,
        )
        .annotate(last_round_at=Coalesce("renotified_at", "created_at"))
        .filter(last_round_at__lte=due_before)
        .order_by("id")
    )


def notifications_undelivered_stale(*, now: datetime) -> QuerySet[AdminNotification]:
    """Open, not fully sent, and no attempt for a while: its delivery task was lost.

    A round that ended with a channel FAILED (retries exhausted) is not stale:
    re-notify, not redelivery, decides whether admins hear of it again.
    """
    stale_before = now - timedelta(seconds=settings.NOTIFICATION_REDELIVER_AFTER_SECONDS)
    this_round = NotificationDelivery.objects.filter(
        notification_id=OuterRef("pk"), round=OuterRef("renotify_count")
    )
    return (
        AdminNotification.objects.filter(
            sent=False, resolved_at__isnull=True, updated_at__lt=stale_before
        )
        .exclude(Exists(this_round.filter(last_attempt_at__gte=stale_before)))
        .exclude(Exists(this_round.filter(status=DeliveryStatus.FAILED)))
        # A reminder acknowledged before it went out is moot, not lost.
        .exclude(acknowledged_at__isnull=False, renotify_count__gt=0)
        .order_by("id")
    )


@dataclass(frozen=True)
class FailureRate:
    failed: int
    total: int

    @property
    def rate(self) -> float:
        return self.failed / self.total if self.total else 0.0


def healing_failure_rate(*, now: datetime, window_minutes: int) -> FailureRate:
    """Healings completed in the window that ended FAILED or MANUAL_REQUIRED,
    over all that counted as attempts (DESIGN.md's KPI: 1 - success rate)."""
    counts = HealingAction.objects.filter(
        completed_at__gte=now - timedelta(minutes=window_minutes),
        completed_at__lte=now,
        recovery_status__in=ATTEMPT_STATUSES,
    ).aggregate(
        total=Count("id"),
        failed=Count(
            "id",
            filter=Q(recovery_status__in=(RecoveryStatus.FAILED, RecoveryStatus.MANUAL_REQUIRED)),
        ),
    )
    return FailureRate(failed=counts["failed"] or 0, total=counts["total"] or 0)


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


def vendors_with_timeouts(
    *, since: datetime, minimum: int, limit: int = 100
) -> list[tuple[int, str, int]]:
    """(vendor id, name, count) of vendors whose orders were detected stuck at
    least ``minimum`` times since ``since`` (dry runs included: they were stuck)."""
    return list(
        HealingAction.objects.filter(issue_detected_at__gte=since, previous_vendor__isnull=False)
        .order_by()
        .values_list("previous_vendor_id", "previous_vendor__name")
        .annotate(n=Count("id"))
        .filter(n__gte=minimum)
        .order_by("-n")[:limit]
    )


def open_condition_keys(*, prefix: str) -> list[str]:
    return list(
        AdminNotification.objects.filter(
            resolved_at__isnull=True, dedup_key__startswith=prefix
        ).values_list("dedup_key", flat=True)
    )


def notification_get(*, notification_id: int) -> AdminNotification | None:
    if not 0 < notification_id < 2**63:
        return None
    return (
        AdminNotification.objects.select_related("acknowledged_by", "resolved_by")
        .filter(pk=notification_id)
        .first()
    )
