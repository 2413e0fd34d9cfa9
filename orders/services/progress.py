"""Forward progress along the state machine, a vendor's decline, and cancellation."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from orders.errors import InvalidTransition
from orders.models import (
    REASSIGNABLE_STATUSES,
    AssignmentOutcome,
    Order,
    OrderStatus,
    PaymentMethod,
    Vendor,
    VendorAssignment,
)
from orders.services.core import (
    Actor,
    _check_transition,
    _compare_and_set,
    _history,
    _release_vendor,
)
from orders.services.credit import credit_refund


def order_transition(
    *,
    order: Order,
    to_status: str,
    actor: Actor,
    reason: str = "",
    expected_status: str | None = None,
    expected_vendor_id: int | None = None,
    now: datetime | None = None,
) -> Order:
    """Move an order forward along the state machine (or cancel it).

    ``expected_vendor_id``: the change applies only while the order is still
    assigned to that vendor (a vendor acting through the vendor API).
    """
    if to_status == OrderStatus.CANCELLED:
        return order_cancel(
            order=order, actor=actor, reason=reason, expected_status=expected_status, now=now
        )
    now = now or timezone.now()
    from_status = expected_status or order.status
    _check_transition(from_status, to_status)
    with transaction.atomic(savepoint=False):
        _compare_and_set(
            order=order,
            expected_status=from_status,
            expected_clock=None,
            expected_vendor_id=expected_vendor_id,
            now=now,
            status=to_status,
            status_changed_at=now,
        )
        _history(
            order=order,
            from_status=from_status,
            to_status=to_status,
            actor=actor,
            reason=reason or f"{from_status.lower()} -> {to_status.lower()}",
            now=now,
            from_vendor_id=order.vendor_id,
            to_vendor_id=order.vendor_id,
        )
        if to_status == OrderStatus.DELIVERED:
            _release_vendor(order=order, outcome=AssignmentOutcome.COMPLETED, now=now)
    return order


def order_confirm(*, order: Order, actor: Actor) -> Order:
    """The vendor takes the assignment."""
    return order_transition(order=order, to_status=OrderStatus.CONFIRMED, actor=actor)


def order_accept(*, order: Order, actor: Actor) -> Order:
    return order_transition(order=order, to_status=OrderStatus.ACCEPTED, actor=actor)


def order_start_processing(*, order: Order, actor: Actor) -> Order:
    return order_transition(order=order, to_status=OrderStatus.PROCESSING, actor=actor)


def order_ship(*, order: Order, actor: Actor) -> Order:
    return order_transition(order=order, to_status=OrderStatus.SHIPPED, actor=actor)


def order_deliver(*, order: Order, actor: Actor) -> Order:
    return order_transition(order=order, to_status=OrderStatus.DELIVERED, actor=actor)


def order_vendor_decline(
    *, order: Order, vendor_id: int, reason: str, now: datetime | None = None
) -> Order:
    """The vendor gives the order back: it is PENDING without a vendor, for good.

    The vendor's assignment ends DECLINED (the one-assignment-per-vendor
    constraint keeps it from ever getting the order again) and
    ``order_vendor_declined`` is sent inside the transaction, so whoever
    starts the reassignment does it atomically with the decline.
    """
    from orders.signals import order_vendor_declined

    now = now or timezone.now()
    from_status = order.status
    if from_status not in REASSIGNABLE_STATUSES:
        raise InvalidTransition(
            f"an order in {from_status} cannot be declined (only "
            f"{', '.join(REASSIGNABLE_STATUSES)})",
            field="status",
        )
    with transaction.atomic(savepoint=False):
        _compare_and_set(
            order=order,
            expected_status=from_status,
            expected_clock=None,
            expected_vendor_id=vendor_id,
            now=now,
            status=OrderStatus.PENDING,
            status_changed_at=now,
            vendor_id=None,
        )
        _history(
            order=order,
            from_status=from_status,
            to_status=OrderStatus.PENDING,
            actor=Actor.vendor(),
            reason=f"declined by vendor {vendor_id}: {reason}",
            now=now,
            from_vendor_id=vendor_id,
            to_vendor_id=None,
        )
        Vendor.objects.filter(pk=vendor_id, open_orders__gt=0).update(
            open_orders=F("open_orders") - 1
        )
        VendorAssignment.objects.filter(
            order_id=order.pk, vendor_id=vendor_id, ended_at__isnull=True
        ).update(ended_at=now, outcome=AssignmentOutcome.DECLINED)
        order_vendor_declined.send(
            sender=Order, order=order, vendor_id=vendor_id, reason=reason, now=now
        )
    return order


def order_cancel(
    *,
    order: Order,
    actor: Actor,
    reason: str,
    expected_status: str | None = None,
    expected_clock: datetime | None = None,
    now: datetime | None = None,
) -> Order:
    """Cancel an open order, refunding its credit exactly once when paid by CREDIT."""
    now = now or timezone.now()
    from_status = expected_status or order.status
    _check_transition(from_status, OrderStatus.CANCELLED)
    with transaction.atomic(savepoint=False):
        _compare_and_set(
            order=order,
            expected_status=from_status,
            expected_clock=expected_clock,
            now=now,
            status=OrderStatus.CANCELLED,
            status_changed_at=now,
        )
        _history(
            order=order,
            from_status=from_status,
            to_status=OrderStatus.CANCELLED,
            actor=actor,
            reason=reason,
            now=now,
            from_vendor_id=order.vendor_id,
            to_vendor_id=order.vendor_id,
        )
        _release_vendor(order=order, outcome=AssignmentOutcome.CANCELLED, now=now)
        if order.payment_method == PaymentMethod.CREDIT:
            credit_refund(order=order, now=now)
    return order
