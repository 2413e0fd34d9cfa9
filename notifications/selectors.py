"""Reads of admin notifications and of the system conditions the sweep watches."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef, QuerySet
from django.db.models.functions import Coalesce

from notifications.models import AdminNotification, DeliveryStatus, NotificationDelivery
from notifications.policy import RENOTIFY_SEVERITIES

# Periodic jobs work on bounded batches: whatever is left waits a minute.
SWEEP_BATCH = 500


def notifications_list(
    *,
    acknowledged: bool | None = False,
    resolved: bool | None = None,
    severity: str | None = None,
    notification_type: str | None = None,
) -> QuerySet[AdminNotification]:
    """Notifications, newest first.

    The default is the seed's "pending": not acknowledged and not resolved (an
    alert that resolved by itself is no longer waiting for anyone). The API and
    the dashboard both list these.
    """
    queryset = AdminNotification.objects.select_related(
        "order", "healing_action", "acknowledged_by", "resolved_by"
    ).order_by("-created_at", "-id")
    if acknowledged is False and resolved is None:
        resolved = False  # pending: nobody has seen it and it is still open
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
