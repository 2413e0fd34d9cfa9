"""Writes of admin notifications: raise, acknowledge, resolve, deliver, sweep.

Raising is one atomic upsert (the healing engine calls it inside its own
transaction and counts statements); delivery leaves only after commit, as a
Celery task, and network calls never run inside a transaction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from notifications import selectors
from notifications.channels import ChannelError, channels_for
from notifications.content import (
    cycle_late_content,
    failure_rate_content,
    notification_message,
    vendor_timeouts_content,
)
from notifications.models import (
    AdminNotification,
    DeliveryStatus,
    NotificationDelivery,
    NotificationType,
)
from notifications.policy import (
    ALERT_SEVERITY,
    BEAT_DOWN_INTERVALS,
    CYCLE_LATE_INTERVALS,
    VENDOR_TIMEOUTS_SEVERITY,
    AlertKey,
)

logger = logging.getLogger("notifications")


@dataclass(frozen=True)
class Raised:
    id: int
    occurrences: int

    @property
    def created(self) -> bool:
        return self.occurrences == 1


def notification_raise(
    *,
    notification_type: str,
    severity: str,
    title: str,
    message: str,
    details: dict[str, Any] | None = None,
    order_id: int | None = None,
    healing_id: int | None = None,
    dedup_key: str = "",
    now: datetime | None = None,
) -> Raised:
    """Raise a notification, or count one more occurrence of the open one.

    One open notification per (order, type), or per ``dedup_key`` for system
    conditions: a single ``INSERT ... ON CONFLICT ... DO UPDATE`` against the
    partial unique indexes, so two concurrent raises cannot make two rows.
    """
    if order_id is None and not dedup_key:
        raise ValueError("a notification needs an order or a dedup_key")
    now = now or timezone.now()
    table = AdminNotification._meta.db_table
    if order_id is not None:
        target = (
            '("order_id", "notification_type") '
            'WHERE ("order_id" IS NOT NULL AND "resolved_at" IS NULL)'
        )
    else:
        target = '("dedup_key") WHERE ("resolved_at" IS NULL AND NOT ("dedup_key" = \'\'))'
    sql = (
        f'INSERT INTO "{table}" ("notification_type", "severity", "order_id", '  # noqa: S608
        '"healing_action_id", "dedup_key", "title", "message", "details", "occurrences", '
        '"last_occurred_at", "sent", "delivery_method", "renotify_count", '
        '"acknowledgement_comment", "resolution_note", "created_at", "updated_at") '
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 1, %s, %s, '', 0, '', '', %s, %s) "
        f"ON CONFLICT {target} DO UPDATE SET "
        f'"occurrences" = "{table}"."occurrences" + 1, '
        '"last_occurred_at" = EXCLUDED."last_occurred_at", '
        '"severity" = EXCLUDED."severity", "title" = EXCLUDED."title", '
        '"message" = EXCLUDED."message", "details" = EXCLUDED."details", '
        '"healing_action_id" = COALESCE(EXCLUDED."healing_action_id", '
        f'"{table}"."healing_action_id"), '
        '"updated_at" = EXCLUDED."updated_at" '
        'RETURNING "id", "occurrences"'
    )
    params = [
        notification_type,
        severity,
        order_id,
        healing_id,
        dedup_key,
        title[:300],
        message,
        json.dumps(details or {}, cls=DjangoJSONEncoder),
        now,
        False,
        now,
        now,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        notification_id, occurrences = cursor.fetchone()
    if occurrences == 1:
        # A new notification: deliver it once the raising transaction commits
        # (a repeat only counts). robust: a broker outage must not fail the
        # caller's committed work; the sweep redelivers what was never attempted.
        transaction.on_commit(
            _delivery_sender(notification_id=notification_id, round=0), robust=True
        )
    return Raised(id=notification_id, occurrences=occurrences)


def _delivery_sender(*, notification_id: int, round: int) -> Callable[[], None]:
    """The on-commit hook that sends one delivery round's task (named, for the log)."""

    def notification_delivery_send() -> None:
        from notifications.tasks import notification_deliver  # the task calls these services

        notification_deliver.delay(notification_id, round)

    return notification_delivery_send


# --- Acknowledge and resolve --------------------------------------------------------


def notification_acknowledge(
    *, notification: AdminNotification, user: Any, comment: str = ""
) -> AdminNotification:
    """An admin has seen it. Idempotent: the first acknowledgement is kept."""
    now = timezone.now()
    AdminNotification.objects.filter(pk=notification.pk, acknowledged_at__isnull=True).update(
        acknowledged_at=now,
        acknowledged_by=user,
        acknowledgement_comment=comment,
        updated_at=now,
    )
    notification.refresh_from_db()
    return notification


def notification_resolve(
    *, notification: AdminNotification, user: Any, note: str = ""
) -> AdminNotification:
    """Close the matter. Resolving MANUAL_INTERVENTION_REQUIRED hands its order
    back to automation: its attempts restart and the next cycle heals it again.

    Resolving implies having seen it, so an unacknowledged one is acknowledged
    by the same admin. Resolving twice changes nothing. The order's open
    HEALING_FAILED notification, the escalation's cause, closes with it.
    """
    now = timezone.now()
    with transaction.atomic():
        resolved = AdminNotification.objects.filter(
            pk=notification.pk, resolved_at__isnull=True
        ).update(resolved_at=now, resolved_by=user, resolution_note=note, updated_at=now)
        if resolved:
            AdminNotification.objects.filter(
                pk=notification.pk, acknowledged_at__isnull=True
            ).update(acknowledged_at=now, acknowledged_by=user)
            if (
                notification.notification_type == NotificationType.MANUAL_INTERVENTION_REQUIRED
                and notification.order_id is not None
            ):
                _order_hand_back(order_id=notification.order_id, user=user, now=now)
                # The failures that led to the escalation are the same matter.
                AdminNotification.objects.filter(
                    order_id=notification.order_id,
                    notification_type=NotificationType.HEALING_FAILED,
                    resolved_at__isnull=True,
                ).update(
                    resolved_at=now,
                    resolved_by=user,
                    resolution_note=f"resolved with notification {notification.pk}",
                    acknowledged_at=Coalesce(F("acknowledged_at"), now),
                    updated_at=now,
                )
    notification.refresh_from_db()
    return notification


def _order_hand_back(*, order_id: int, user: Any, now: datetime) -> None:
    # healing.services imports this module: a real import cycle.
    from healing.services import healing_manual_resolve

    healing_manual_resolve(order_id=order_id, user=user, now=now)


def notification_resolve_condition(*, dedup_key: str, now: datetime | None = None) -> int:
    """The system condition behind ``dedup_key`` has cleared: close its alert."""
    now = now or timezone.now()
    return AdminNotification.objects.filter(dedup_key=dedup_key, resolved_at__isnull=True).update(
        resolved_at=now, resolution_note="condition cleared", updated_at=now
    )


# --- Delivery -------------------------------------------------------------------------


@dataclass
class RoundResult:
    notification_id: int
    round: int
    skipped: str = ""
    delivered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.skipped and not self.failed


def notification_deliver_round(
    *, notification_id: int, round: int = 0, final: bool = False
) -> RoundResult:
    """Send one delivery round on every configured channel not yet delivered.

    Each channel is tried independently: one that fails is recorded (attempts,
    last error) and does not stop the others. ``final`` marks this try as the
    last one: channels still failing end FAILED. No transaction is open during
    a channel call; each attempt is recorded in its own statement.
    """
    result = RoundResult(notification_id=notification_id, round=round)
    notification = AdminNotification.objects.filter(pk=notification_id).first()
    if notification is None:
        result.skipped = "no such notification"
        return result
    if notification.resolved_at is not None:
        result.skipped = "resolved"
        return result
    if round > 0 and notification.acknowledged_at is not None:
        result.skipped = "acknowledged"
        return result
    channels = {channel.name: channel for channel in channels_for(notification.severity)}
    NotificationDelivery.objects.bulk_create(
        [
            NotificationDelivery(notification_id=notification_id, channel=name, round=round)
            for name in channels
        ],
        ignore_conflicts=True,
    )
    to_send = NotificationDelivery.objects.filter(
        notification_id=notification_id, round=round, channel__in=list(channels)
    ).exclude(status=DeliveryStatus.DELIVERED)
    message = notification_message(notification=notification, round=round)
    for delivery in to_send:
        attempted_at = timezone.now()
        try:
            channels[delivery.channel].send(message)
        except Exception as exc:  # whatever one channel raises, the others still go
            error = str(exc) if isinstance(exc, ChannelError) else f"{type(exc).__name__}: {exc}"
            result.failed[delivery.channel] = error
            NotificationDelivery.objects.filter(pk=delivery.pk).update(
                attempts=F("attempts") + 1,
                last_attempt_at=attempted_at,
                last_error=error[:2000],
                status=DeliveryStatus.FAILED if final else DeliveryStatus.PENDING,
            )
            logger.warning(
                "notification delivery failed",
                extra={
                    "notification_id": notification_id,
                    "channel": delivery.channel,
                    "round": round,
                    "final": final,
                    "error": error[:200],
                },
            )
            continue
        result.delivered.append(delivery.channel)
        NotificationDelivery.objects.filter(pk=delivery.pk).update(
            attempts=F("attempts") + 1,
            last_attempt_at=attempted_at,
            delivered_at=timezone.now(),
            status=DeliveryStatus.DELIVERED,
        )
    if not result.failed:
        now = timezone.now()
        AdminNotification.objects.filter(pk=notification_id).update(
            sent=True,
            sent_at=Coalesce(F("sent_at"), now),
            last_delivered_at=now,
            delivery_method=",".join(channels)[:200],
        )
    return result


# --- The sweep -------------------------------------------------------------------------


@dataclass
class SweepResult:
    resolved: int = 0
    raised: list[str] = field(default_factory=list)
    cleared: int = 0
    renotified: int = 0
    redelivered: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def notifications_sweep_run(*, now: datetime | None = None) -> SweepResult:
    """Every minute: close what recovered, watch system conditions, remind, redeliver.

    Each step works on a bounded batch and filters on the current state, so a
    re-run (or two sweeps at once) changes nothing twice.
    """
    now = now or timezone.now()
    result = SweepResult()
    result.resolved = notifications_recovered_resolve(now=now)
    _system_alerts_check(now=now, result=result)
    result.renotified = notifications_renotify(now=now)
    result.redelivered = notifications_redeliver(now=now)
    logger.info("notifications sweep", extra=result.as_dict())
    return result


def notifications_recovered_resolve(*, now: datetime) -> int:
    """Close order notifications whose order recovered or finished.

    A recovered order on manual hold is handed back to automation too: the hold
    would otherwise keep it out of detection the next time it gets stuck.
    """
    rows = selectors.notifications_recovered()
    if not rows:
        return 0
    resolved = 0
    with transaction.atomic():
        for finished in (True, False):
            ids = [
                pk
                for pk, _type, _order, status in rows
                if (status in ("DELIVERED", "CANCELLED")) == finished
            ]
            if not ids:
                continue
            resolved += AdminNotification.objects.filter(
                pk__in=ids, resolved_at__isnull=True
            ).update(
                resolved_at=now,
                resolution_note="order finished" if finished else "order recovered",
                updated_at=now,
            )
        for _pk, notification_type, order_id, _status in rows:
            if notification_type == NotificationType.MANUAL_INTERVENTION_REQUIRED:
                _order_hand_back(order_id=order_id, user=None, now=now)
    return resolved


def _condition_set(
    *,
    key: str,
    active: bool,
    content: tuple[str, str, dict[str, Any]] | None,
    now: datetime,
    result: SweepResult,
    severity: str | None = None,
) -> None:
    """Raise (or count) the condition's alert while it holds; resolve it when it clears."""
    if active and content is not None:
        title, message, details = content
        raised = notification_raise(
            notification_type=NotificationType.SYSTEM_ALERT,
            severity=severity or ALERT_SEVERITY[key],
            title=title,
            message=message,
            details=details,
            dedup_key=key,
            now=now,
        )
        if raised.created:
            result.raised.append(key)
    else:
        result.cleared += notification_resolve_condition(dedup_key=key, now=now)


def _system_alerts_check(*, now: datetime, result: SweepResult) -> None:
    # Failure rate over the window: CRITICAL above the threshold, MEDIUM above half.
    threshold = settings.NOTIFICATION_FAILURE_RATE_THRESHOLD
    window = settings.NOTIFICATION_FAILURE_RATE_WINDOW_MINUTES
    rate = selectors.healing_failure_rate(now=now, window_minutes=window)
    enough = rate.total >= settings.NOTIFICATION_FAILURE_RATE_MIN_HEALINGS
    critical = enough and rate.rate > threshold
    warning = enough and not critical and rate.rate > threshold / 2

    def rate_content(is_warning: bool) -> tuple[str, str, dict[str, Any]]:
        return failure_rate_content(
            rate=rate.rate,
            failed=rate.failed,
            total=rate.total,
            threshold=threshold,
            window_minutes=window,
            warning=is_warning,
        )

    with transaction.atomic():
        _condition_set(
            key=AlertKey.FAILURE_RATE,
            active=critical,
            content=rate_content(False) if critical else None,
            now=now,
            result=result,
        )
        # The warning is superseded by the alert, and cleared with it.
        _condition_set(
            key=AlertKey.FAILURE_RATE_WARNING,
            active=warning,
            content=rate_content(True) if warning else None,
            now=now,
            result=result,
        )

    # No cycle for three intervals: beat (or the cycle job) is down; two: late.
    # A fresh install that never ran a cycle is not an outage.
    last = selectors.last_cycle_started_at()
    interval = selectors.cycle_interval_seconds()
    age = (now - last).total_seconds() if last is not None else 0.0
    down = last is not None and age > BEAT_DOWN_INTERVALS * interval
    late = last is not None and not down and age > CYCLE_LATE_INTERVALS * interval
    with transaction.atomic():
        for key, active in ((AlertKey.BEAT_DOWN, down), (AlertKey.CYCLE_LATE, late)):
            content = (
                cycle_late_content(
                    last_cycle_at=last, interval_seconds=interval, now=now, down=key == "beat_down"
                )
                if active and last is not None
                else None
            )
            _condition_set(key=key, active=active, content=content, now=now, result=result)

    # LOW: vendors whose orders keep getting stuck today; closed when the day ends.
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today_keys = set()
    with transaction.atomic():
        for vendor_id, name, count in selectors.vendors_with_timeouts(
            since=day_start, minimum=settings.NOTIFICATION_VENDOR_TIMEOUTS_PER_DAY
        ):
            key = AlertKey.vendor_timeouts(vendor_id=vendor_id, day=day_start.date())
            today_keys.add(key)
            _condition_set(
                key=key,
                active=True,
                content=vendor_timeouts_content(
                    vendor_id=vendor_id, vendor_name=name, timeouts=count, day=day_start.date()
                ),
                now=now,
                result=result,
                severity=VENDOR_TIMEOUTS_SEVERITY,
            )
        for key in selectors.open_condition_keys(prefix=AlertKey.VENDOR_TIMEOUTS_PREFIX):
            if not key.endswith(f":{day_start.date().isoformat()}"):
                _condition_set(key=key, active=False, content=None, now=now, result=result)


def notifications_renotify(*, now: datetime) -> int:
    """Deliver unacknowledged CRITICAL / HIGH notifications again, up to the limit.

    The round is claimed under ``skip_locked`` row locks and committed before
    its task leaves, so two sweeps never send the same round twice.
    """
    with transaction.atomic():
        due = list(
            selectors.notifications_due_for_renotify(now=now)
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("id", "renotify_count")[: selectors.SWEEP_BATCH]
        )
        if not due:
            return 0
        AdminNotification.objects.filter(pk__in=[pk for pk, _ in due]).update(
            renotify_count=F("renotify_count") + 1, renotified_at=now, sent=False, updated_at=now
        )
        for pk, count in due:
            transaction.on_commit(
                _delivery_sender(notification_id=pk, round=count + 1), robust=True
            )
    return len(due)


def notifications_redeliver(*, now: datetime) -> int:
    """Send again the current round of notifications whose delivery task was lost."""
    with transaction.atomic():
        stale = list(
            selectors.notifications_undelivered_stale(now=now)
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("id", "renotify_count")[: selectors.SWEEP_BATCH]
        )
        if not stale:
            return 0
        # updated_at is the redelivery mark: at most one redelivery per period.
        AdminNotification.objects.filter(pk__in=[pk for pk, _ in stale]).update(updated_at=now)
        for pk, round_ in stale:
            transaction.on_commit(_delivery_sender(notification_id=pk, round=round_), robust=True)
    return len(stale)
