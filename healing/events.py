"""Everything the healing engine tells people, one small function per event.

DESIGN.md "Notifications": only on failure. These functions are the only
callers of ``notification_raise`` in the project, so "who gets paged, for
what" is this file. Each is called inside the transaction that records what
happened (the raise is one upsert; delivery leaves after commit).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings

from healing import messages
from healing.models import HealingAction
from healing.selectors import healing_history
from notifications.models import NotificationType, Severity
from notifications.services import Raised, notification_raise, notification_resolve_condition

GUARD_KEY = "guard"


def healing_failed_event(*, healing: HealingAction, error: str, now: datetime) -> Raised:
    """A healing ended FAILED (its retries are spent, or it cannot work): HIGH."""
    history = healing_history(order_id=healing.order_id)
    title, message, details = messages.healing_failed_content(
        healing=healing, error=error, history=history, now=now
    )
    return notification_raise(
        notification_type=NotificationType.HEALING_FAILED,
        severity=Severity.HIGH,
        title=title,
        message=message,
        details=details,
        order_id=healing.order_id,
        healing_id=healing.pk,
        now=now,
    )


def manual_intervention_required_event(*, healing: HealingAction, now: datetime) -> Raised:
    """The ladder ran out (or an operator asked): a person must act. HIGH."""
    history = healing_history(order_id=healing.order_id)
    title, message, details = messages.manual_intervention_content(
        healing=healing, history=history, now=now
    )
    return notification_raise(
        notification_type=NotificationType.MANUAL_INTERVENTION_REQUIRED,
        severity=Severity.HIGH,
        title=title,
        message=message,
        details=details,
        order_id=healing.order_id,
        healing_id=healing.pk,
        now=now,
    )


def guard_tripped_event(
    *, cycle_id: int, stuck: int, open_orders: int, by_action: dict[str, int], now: datetime
) -> Raised:
    """Invariant 8: one CRITICAL SYSTEM_ALERT while the blast-radius guard holds."""
    title, message, details = messages.guard_tripped_content(
        cycle_id=cycle_id,
        stuck=stuck,
        open_orders=open_orders,
        min_stuck=settings.HEALING_GUARD_MIN_STUCK,
        max_share=settings.HEALING_GUARD_MAX_SHARE,
        by_action=by_action,
    )
    return system_condition_event(
        key=GUARD_KEY,
        severity=Severity.CRITICAL,
        content=(title, message, details),
        now=now,
    )


def guard_cleared_event(*, now: datetime) -> int:
    return system_condition_cleared_event(key=GUARD_KEY, now=now)


def system_condition_event(
    *, key: str, severity: str, content: tuple[str, str, dict[str, Any]], now: datetime
) -> Raised:
    """A system condition holds (failure rate, beat down, a vendor's timeouts …)."""
    title, message, details = content
    return notification_raise(
        notification_type=NotificationType.SYSTEM_ALERT,
        severity=severity,
        title=title,
        message=message,
        details=details,
        dedup_key=key,
        now=now,
    )


def system_condition_cleared_event(*, key: str, now: datetime) -> int:
    """The condition behind ``key`` cleared: its alert resolves by itself."""
    return notification_resolve_condition(dedup_key=key, now=now)
