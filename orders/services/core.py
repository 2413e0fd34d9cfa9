"""The state machine and the compare-and-set every status change is made of."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import F

from orders.errors import InvalidTransition, OrderMovedOn
from orders.models import (
    ActorType,
    Order,
    OrderStatus,
    OrderStatusChange,
    Vendor,
    VendorAssignment,
    status_write_allowed,
)
from orders.vendor_time import order_due_at  # issue 18: vendor-time due times

# DESIGN.md's state machine. Reassignment (to PENDING with another vendor) is
# listed separately because it also needs a vendor change.
TRANSITIONS: dict[str, frozenset[str]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.CONFIRMED, OrderStatus.CANCELLED}),
    OrderStatus.CONFIRMED: frozenset({OrderStatus.ACCEPTED, OrderStatus.CANCELLED}),
    OrderStatus.ACCEPTED: frozenset({OrderStatus.PROCESSING, OrderStatus.CANCELLED}),
    OrderStatus.PROCESSING: frozenset({OrderStatus.SHIPPED, OrderStatus.CANCELLED}),
    OrderStatus.SHIPPED: frozenset({OrderStatus.DELIVERED, OrderStatus.CANCELLED}),
    OrderStatus.DELIVERED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}


@dataclass(frozen=True)
class Actor:
    type: str
    user_id: int | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(type=ActorType.SYSTEM)

    @classmethod
    def healing(cls) -> Actor:
        return cls(type=ActorType.HEALING)

    @classmethod
    def vendor(cls) -> Actor:
        return cls(type=ActorType.VENDOR)

    @classmethod
    def user(cls, user: Any) -> Actor:
        return cls(type=ActorType.USER, user_id=user.pk)


@contextlib.contextmanager
def _status_writes() -> Iterator[None]:
    token = status_write_allowed.set(True)
    try:
        yield
    finally:
        status_write_allowed.reset(token)


def _check_transition(from_status: str, to_status: str) -> None:
    if to_status not in TRANSITIONS[from_status]:
        raise InvalidTransition(
            f"an order cannot go from {from_status} to {to_status}", field="status"
        )


def _compare_and_set(
    *,
    order: Order,
    expected_status: str,
    expected_clock: datetime | None,
    now: datetime,
    expected_vendor_id: int | None = None,
    vendor: Vendor | None = None,
    **changes: Any,
) -> None:
    """One conditional UPDATE; raises OrderMovedOn when the order is not as expected."""
    # Issue 18 ("Vendor time"): the clock that starts now runs out at the
    # vendor's working-time due time; None (wall clock) for a vendor without a
    # calendar. ``vendor`` (or the cached order.vendor) spares a statement.
    if vendor is None and Order.vendor.is_cached(order):
        vendor = order.vendor
    changes["due_at"] = order_due_at(
        status=changes.get("status", expected_status),
        vendor_id=changes.get("vendor_id", order.vendor_id),
        start=now,
        vendor=vendor,
    )
    filters: dict[str, Any] = {"pk": order.pk, "status": expected_status}
    if expected_clock is not None:
        filters["stuck_since"] = expected_clock
    if expected_vendor_id is not None:
        # A vendor acts on its own assignment only, even if a reassignment
        # landed between its read and this write.
        filters["vendor_id"] = expected_vendor_id
    with _status_writes():
        updated = Order.objects.filter(**filters).update(stuck_since=now, updated_at=now, **changes)
    if not updated:
        raise OrderMovedOn(
            f"order {order.number} is no longer {expected_status}"
            + (" in the same stuck episode" if expected_clock is not None else "")
        )
    # Keep the caller's instance in step with the row.
    for name, value in changes.items():
        setattr(order, name, value)
    order.stuck_since = now
    order.updated_at = now
    order._loaded_status = order.status


def _history(
    *,
    order: Order,
    from_status: str,
    to_status: str,
    actor: Actor,
    reason: str,
    now: datetime,
    from_vendor_id: int | None = None,
    to_vendor_id: int | None = None,
) -> OrderStatusChange:
    return OrderStatusChange.objects.create(
        order_id=order.pk,
        from_status=from_status,
        to_status=to_status,
        from_vendor_id=from_vendor_id,
        to_vendor_id=to_vendor_id,
        actor_type=actor.type,
        actor_user_id=actor.user_id,
        reason=reason[:500],
        created_at=now,
    )


def _release_vendor(*, order: Order, outcome: str, now: datetime) -> None:
    """The order leaves its vendor for good (delivered or cancelled)."""
    if order.vendor_id is None:
        return
    Vendor.objects.filter(pk=order.vendor_id, open_orders__gt=0).update(
        open_orders=F("open_orders") - 1
    )
    VendorAssignment.objects.filter(
        order_id=order.pk, vendor_id=order.vendor_id, ended_at__isnull=True
    ).update(ended_at=now, outcome=outcome)
