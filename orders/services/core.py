"""The state machine and the compare-and-set every status change is made of."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from django.db import connection
from django.db.models import F

from orders import sql
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

# docs/DECISIONS.md "Order state machine". Reassignment (to PENDING with another vendor) is
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


@cache
def _compare_and_set_sql(
    vendor: str, names: tuple[str, ...], by_clock: bool, by_vendor: bool
) -> str:
    """The order's conditional UPDATE for one shape of change, built once.

    What ``Order.objects.filter(pk=..., status=...[, stuck_since=...]
    [, vendor_id=...]).update(**names)`` runs, without compiling a queryset
    for every status change (docs/BENCHMARK.md "Heal path, issue 15").
    """
    sets = ", ".join(f"{sql.column(Order, name)} = %s" for name in names)
    where = [f"{sql.column(Order, 'id')} = %s", f"{sql.column(Order, 'status')} = %s"]
    if by_clock:
        where.append(f"{sql.column(Order, 'stuck_since')} = %s")
    if by_vendor:
        where.append(f"{sql.column(Order, 'vendor')} = %s")
    return f"UPDATE {sql.table(Order)} SET {sets} WHERE {' AND '.join(where)}"  # noqa: S608


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
    names = ("stuck_since", "updated_at", *changes)
    params = [sql.prepared(Order, "stuck_since", now), sql.prepared(Order, "updated_at", now)]
    params += [sql.prepared(Order, name, value) for name, value in changes.items()]
    params += [order.pk, expected_status]
    if expected_clock is not None:
        params.append(sql.prepared(Order, "stuck_since", expected_clock))
    if expected_vendor_id is not None:
        # A vendor acts on its own assignment only, even if a reassignment
        # landed between its read and this write.
        params.append(expected_vendor_id)
    statement = _compare_and_set_sql(
        connection.vendor, names, expected_clock is not None, expected_vendor_id is not None
    )

    def moved_on(updated: int) -> None:
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

    sql.execute(statement, params, check=moved_on)


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
) -> None:
    """Append the order's status change (one INSERT, no id read back)."""
    sql.rows_insert(
        [
            OrderStatusChange(
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
        ]
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
