"""Manual actions for an order on manual hold (issue 19): what the escalation asks for.

The MANUAL_INTERVENTION notification tells an operator to "cancel and refund,
or find a vendor by hand"; these are those acts, plus "heal now with this
action". Each goes through the services that own the change (orders.services
for the order, healing.execution for a healing), writes its history with the
operator as actor (a status change's ``actor_user``; a healing's
``requested_by``), and then closes the matter: the hold is resolved (the
order is handed back to automation, its attempts restart) and the order's
open escalation notifications are resolved by the same operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from healing.detection import order_on_manual_hold
from healing.errors import ActionNotApplicable
from healing.execution import HealReport, healing_request, manual_intervention_resolve
from healing.models import HealingAction, Trigger
from notifications.models import AdminNotification, NotificationType
from notifications.services import notification_resolve
from orders.models import Order, Vendor
from orders.services import Actor, order_cancel, order_reassign_vendor

ESCALATIONS = (NotificationType.MANUAL_INTERVENTION_REQUIRED, NotificationType.HEALING_FAILED)


@dataclass(frozen=True)
class ManualOutcome:
    order: Order
    holds_resolved: int
    notifications_resolved: int
    healing: HealingAction | None = None
    retry_scheduled: bool = False


def _hold_check(order: Order) -> None:
    if not order_on_manual_hold(order_id=order.pk):
        raise ActionNotApplicable(
            f"order {order.number} is not on manual hold: automation still owns it",
            field="orderId",
        )


def _matter_close(*, order: Order, user: Any, note: str) -> tuple[int, int]:
    """Resolve the hold and the order's open escalations; (holds, notifications)."""
    holds = manual_intervention_resolve(order_id=order.pk, user=user, now=timezone.now())
    notifications = 0
    for notification in AdminNotification.objects.filter(
        order_id=order.pk, notification_type__in=ESCALATIONS, resolved_at__isnull=True
    ):
        notification_resolve(notification=notification, user=user, note=note)
        notifications += 1
    return holds, notifications


def order_cancel_manual(*, order: Order, user: Any, note: str = "") -> ManualOutcome:
    """Cancel (and refund a credit order once) an order on manual hold."""
    _hold_check(order)
    reason = f"cancelled by {user.get_username()} (manual intervention)" + (
        f": {note}" if note else ""
    )
    with transaction.atomic():
        order_cancel(order=order, actor=Actor.user(user), reason=reason)
        holds, notifications = _matter_close(order=order, user=user, note=reason)
    order.refresh_from_db()
    return ManualOutcome(order=order, holds_resolved=holds, notifications_resolved=notifications)


def order_reassign_manual(
    *, order: Order, vendor: Vendor, user: Any, note: str = ""
) -> ManualOutcome:
    """Give an order on manual hold to a vendor the operator chose (one that never had it)."""
    _hold_check(order)
    reason = f"reassigned to {vendor.name} by {user.get_username()} (manual intervention)" + (
        f": {note}" if note else ""
    )
    with transaction.atomic():
        order_reassign_vendor(order=order, vendor=vendor, actor=Actor.user(user), reason=reason)
        holds, notifications = _matter_close(order=order, user=user, note=reason)
    order.refresh_from_db()
    return ManualOutcome(order=order, holds_resolved=holds, notifications_resolved=notifications)


def order_heal_manual(*, order: Order, action: str, user: Any) -> ManualOutcome:
    """Hand the order back and heal it now with the operator's chosen action.

    The hold is resolved first: a healing of an order on hold would count the
    spent ladder again. The healing runs inline (``healing_request``, trigger
    OPERATOR, the operator its ``requested_by``).
    """
    _hold_check(order)
    with transaction.atomic():
        holds, notifications = _matter_close(
            order=order, user=user, note=f"healed by {user.get_username()} with {action}"
        )
    report: HealReport = healing_request(
        order=order, requested_by=user, recovery_action=action, trigger=Trigger.OPERATOR
    )
    order.refresh_from_db()
    return ManualOutcome(
        order=order,
        holds_resolved=holds,
        notifications_resolved=notifications,
        healing=report.healing,
        retry_scheduled=report.retry_scheduled,
    )
