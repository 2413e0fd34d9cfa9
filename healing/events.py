"""Everything the healing engine tells people, one small function per event.

docs/DECISIONS.md "Notifications": only on failure. These functions are the only
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
from notifications.models import AdminNotification, NotificationType, Severity
from notifications.services import Raised, notification_raise, notification_resolve_condition
from orders import health
from orders.models import CircuitState, Vendor

GUARD_KEY = "guard"
# The folded order list of a vendor notification keeps this many orders (the
# count keeps counting).
FOLDED_ORDERS_MAX = 100


def vendor_circuit_key(vendor_id: int) -> str:
    return f"vendor_circuit:{vendor_id}"


def healing_failed_event(*, healing: HealingAction, error: str, now: datetime) -> Raised:
    """A healing ended FAILED (its retries are spent, or it cannot work): HIGH.

    Inhibition (issue 18): while the order's vendor has its circuit open or its
    vendor alert open, the failure folds into that one notification instead.
    """
    vendor_id = healing.order.vendor_id or healing.previous_vendor_id
    if vendor_id is not None:
        folded = _vendor_fold(vendor_id=vendor_id, healing=healing, error=error, now=now)
        if folded is not None:
            return folded
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


# --- Vendor health (issue 18) ------------------------------------------------


def _vendor_name(vendor_id: int) -> str:
    return Vendor.objects.filter(pk=vendor_id).values_list("name", flat=True).first() or str(
        vendor_id
    )


def vendor_circuit_opened_event(
    *, vendor_id: int, error: str, now: datetime, reopened: bool = False
) -> Raised:
    """A vendor's circuit opened (or a probe failed): one MEDIUM notification per
    vendor (dedup by vendor), resolved when the circuit closes."""
    name = _vendor_name(vendor_id)
    open_row = (
        AdminNotification.objects.filter(
            dedup_key=vendor_circuit_key(vendor_id), resolved_at__isnull=True
        )
        .values_list("details", flat=True)
        .first()
    )
    details: dict[str, Any] = dict(open_row or {})
    details.update(
        {
            "alert": "vendor_circuit_open",
            "vendor_id": vendor_id,
            "vendor_name": name,
            "last_error": error[:500],
            "reopened": reopened,
        }
    )
    details.setdefault("failed_orders", 0)
    details.setdefault("orders", [])
    title = f"Vendor {name}: circuit open, no calls to it"
    message = (
        f"Calls to vendor {name} (id {vendor_id}) keep failing ({error[:200]}). "
        "Offers and workflow retries to it are paused; a probe call is tried after "
        "the cool-down and this notification resolves when the vendor answers."
    )
    return notification_raise(
        notification_type=NotificationType.SYSTEM_ALERT,
        severity=Severity.MEDIUM,
        title=title,
        message=message,
        details=details,
        dedup_key=vendor_circuit_key(vendor_id),
        now=now,
    )


def vendor_circuit_closed_event(*, vendor_id: int, now: datetime) -> int:
    """The probe went through: the vendor's notification resolves by itself."""
    return notification_resolve_condition(dedup_key=vendor_circuit_key(vendor_id), now=now)


def _vendor_fold(
    *, vendor_id: int, healing: HealingAction, error: str, now: datetime
) -> Raised | None:
    """Fold one order's failure into its vendor's open notification, if any.

    The vendor notification's row is locked so concurrent folds count one by one.
    """
    key = vendor_circuit_key(vendor_id)
    row = (
        AdminNotification.objects.select_for_update()
        .filter(dedup_key=key, resolved_at__isnull=True)
        .first()
    )
    if row is None:
        if health.circuit_get(vendor_id=vendor_id).state == CircuitState.CLOSED:
            return None
        vendor_circuit_opened_event(vendor_id=vendor_id, error=error, now=now)
        row = (
            AdminNotification.objects.select_for_update()
            .filter(dedup_key=key, resolved_at__isnull=True)
            .first()
        )
        if row is None:
            return None
    details = dict(row.details or {})
    orders = list(details.get("orders") or [])
    if len(orders) < FOLDED_ORDERS_MAX:
        orders.append(
            {
                "order_id": healing.order_id,
                "order_number": healing.order.number,
                "healing_id": healing.pk,
                "error": error[:200],
            }
        )
    details["orders"] = orders
    details["failed_orders"] = int(details.get("failed_orders") or 0) + 1
    return notification_raise(
        notification_type=row.notification_type,
        severity=row.severity,
        title=row.title,
        message=(
            f"{row.message.split(' [')[0]} [{details['failed_orders']} of its orders failed "
            "healing meanwhile; see details.orders]"
        ),
        details=details,
        dedup_key=key,
        now=now,
    )
