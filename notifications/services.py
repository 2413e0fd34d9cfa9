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

from celery import current_app
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from notifications import selectors
from notifications.channels import ChannelError, channels_for
from notifications.content import notification_message
from notifications.models import (
    AdminNotification,
    DeliveryStatus,
    NotificationDelivery,
)
from notifications.signals import notification_resolved

logger = logging.getLogger("notifications")


@dataclass(frozen=True)
class Raised:
    id: int
    occurrences: int

    @property
    def created(self) -> bool:
        return self.occurrences == 1


def _raise_sql(*, by_order: bool) -> str:
    """The upsert against the partial unique index of an order's or a dedup key's
    open notification: a new row, or one more occurrence of the open one."""
    table = AdminNotification._meta.db_table
    if by_order:
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
    return sql


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
    sql = _raise_sql(by_order=order_id is not None)
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
    """The on-commit hook that sends one delivery round's task (named, for the log).

    The task is taken from the Celery registry by name: tasks import this
    module, never the other way round.
    """

    def notification_delivery_send() -> None:
        current_app.tasks["notifications.tasks.notification_deliver"].delay(notification_id, round)

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
    """Close the matter. Resolving implies having seen it, so an unacknowledged
    one is acknowledged by the same admin. Resolving twice changes nothing.

    Apps that own the matter react through ``notification_resolved`` (sent
    inside the transaction): healing hands a manual intervention back to
    automation there.
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
            notification_resolved.send(
                sender=AdminNotification, notification=notification, user=user, now=now
            )
    notification.refresh_from_db()
    return notification


def notifications_resolve_for_order(
    *, order_id: int, notification_type: str, user: Any, note: str, now: datetime
) -> int:
    """Resolve an order's open notifications of one type (e.g. the failures
    behind a resolved escalation: the same matter)."""
    return AdminNotification.objects.filter(
        order_id=order_id, notification_type=notification_type, resolved_at__isnull=True
    ).update(
        resolved_at=now,
        resolved_by=user,
        resolution_note=note,
        acknowledged_at=Coalesce(F("acknowledged_at"), now),
        updated_at=now,
    )


def notifications_close(*, ids: list[int], note: str, now: datetime) -> int:
    """Resolve these notifications because their matter ended by itself."""
    return AdminNotification.objects.filter(pk__in=ids, resolved_at__isnull=True).update(
        resolved_at=now, resolution_note=note, updated_at=now
    )


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


def _round_skip_reason(*, notification: AdminNotification | None, round: int) -> str:
    """Why a delivery round sends nothing ("" when it sends)."""
    if notification is None:
        return "no such notification"
    if notification.resolved_at is not None:
        return "resolved"
    if round > 0 and notification.acknowledged_at is not None:
        return "acknowledged"
    return ""


def _delivery_failed(
    *, delivery: NotificationDelivery, error: str, attempted_at: datetime, final: bool
) -> None:
    """Record one channel's failed attempt (FAILED when it was the last try) and log it."""
    NotificationDelivery.objects.filter(pk=delivery.pk).update(
        attempts=F("attempts") + 1,
        last_attempt_at=attempted_at,
        last_error=error[:2000],
        status=DeliveryStatus.FAILED if final else DeliveryStatus.PENDING,
    )
    logger.warning(
        "notification delivery failed",
        extra={
            "notification_id": delivery.notification_id,
            "channel": delivery.channel,
            "round": delivery.round,
            "final": final,
            "error": error[:200],
        },
    )


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
    skipped = _round_skip_reason(notification=notification, round=round)
    if skipped or notification is None:
        result.skipped = skipped
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
            _delivery_failed(delivery=delivery, error=error, attempted_at=attempted_at, final=final)
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
    renotified: int = 0
    redelivered: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def notifications_sweep_run(*, now: datetime | None = None) -> SweepResult:
    """Every minute: remind admins of what they have not seen, redeliver what was lost.

    Each step works on a bounded batch and filters on the current state, so a
    re-run (or two sweeps at once) changes nothing twice.
    """
    now = now or timezone.now()
    result = SweepResult(
        renotified=notifications_renotify(now=now), redelivered=notifications_redeliver(now=now)
    )
    logger.info("notifications sweep", extra=result.as_dict())
    return result


def _rounds_send(
    *,
    due: QuerySet[AdminNotification],
    mark: Callable[[list[int]], object],
    round_of: Callable[[int], int],
) -> int:
    """Claim a batch of notifications under ``skip_locked`` row locks, mark them,
    and send each one's delivery round after commit, so two sweeps never send
    the same round twice."""
    with transaction.atomic():
        rows = list(
            due.select_for_update(skip_locked=True, of=("self",)).values_list(
                "id", "renotify_count"
            )[: selectors.SWEEP_BATCH]
        )
        if not rows:
            return 0
        mark([pk for pk, _ in rows])
        for pk, count in rows:
            transaction.on_commit(
                _delivery_sender(notification_id=pk, round=round_of(count)), robust=True
            )
    return len(rows)


def notifications_renotify(*, now: datetime) -> int:
    """Deliver unacknowledged CRITICAL / HIGH notifications again, up to the limit."""
    return _rounds_send(
        due=selectors.notifications_due_for_renotify(now=now),
        mark=lambda ids: AdminNotification.objects.filter(pk__in=ids).update(
            renotify_count=F("renotify_count") + 1, renotified_at=now, sent=False, updated_at=now
        ),
        round_of=lambda count: count + 1,
    )


def notifications_redeliver(*, now: datetime) -> int:
    """Send again the current round of notifications whose delivery task was lost."""
    return _rounds_send(
        due=selectors.notifications_undelivered_stale(now=now),
        # updated_at is the redelivery mark: at most one redelivery per period.
        mark=lambda ids: AdminNotification.objects.filter(pk__in=ids).update(updated_at=now),
        round_of=lambda count: count,
    )
