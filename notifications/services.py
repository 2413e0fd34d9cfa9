"""Writes of admin notifications."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.utils import timezone

from notifications.models import AdminNotification


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
            'WHERE ("resolved_at" IS NULL AND "order_id" IS NOT NULL)'
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
    return Raised(id=notification_id, occurrences=occurrences)


def notification_resolve_condition(*, dedup_key: str, now: datetime | None = None) -> int:
    """The system condition behind ``dedup_key`` has cleared: close its alert."""
    now = now or timezone.now()
    return AdminNotification.objects.filter(dedup_key=dedup_key, resolved_at__isnull=True).update(
        resolved_at=now, resolution_note="condition cleared", updated_at=now
    )
