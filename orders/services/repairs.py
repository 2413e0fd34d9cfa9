"""Repairs healing makes: another vendor, or the stuck clock restarted."""

from __future__ import annotations

from datetime import datetime
from functools import cache

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from orders import sql
from orders.errors import InvalidTransition, NoVendorAvailable
from orders.models import (
    REASSIGNABLE_STATUSES,
    AssignmentOutcome,
    Order,
    OrderStatus,
    Vendor,
    VendorAssignment,
)
from orders.services.core import TRANSITIONS, Actor, _compare_and_set, _history


@cache
def _vendor_load_move_sql(vendor: str, from_a_vendor: bool) -> str:
    """The statement that counts an order out of its old vendor and into the new one.

    Parameters: the new vendor, the vendor ids to lock (the old one first when
    there is one), the old vendor when there is one, the new vendor, True
    (its ``is_active``) and the order.
    """
    vendors, vendor_id = sql.table(Vendor), sql.column(Vendor, "id")
    load, capacity = sql.column(Vendor, "open_orders"), sql.column(Vendor, "capacity")
    assignments = sql.table(VendorAssignment)
    # Both rows are locked in id order by a FOR UPDATE subquery of the same
    # statement: locked in scan order, two reassignments moving orders in
    # opposite directions between the same two vendors deadlock (bench_healing
    # hit it at 10k concurrent healings). SQLite locks the whole database.
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    ids = "%s, %s" if from_a_vendor else "%s"
    active = sql.column(Vendor, "is_active")
    takes_it = (
        f"({vendor_id} = %s AND {active} = %s AND {load} < {capacity} "  # noqa: S608
        f"AND NOT EXISTS (SELECT 1 FROM {assignments} AS had "
        f"WHERE had.{sql.column(VendorAssignment, 'order')} = %s "
        f"AND had.{sql.column(VendorAssignment, 'vendor')} = {vendors}.{vendor_id}))"
    )
    moves = f"({vendor_id} = %s OR {takes_it})" if from_a_vendor else takes_it
    return (
        f"UPDATE {vendors} SET {load} = {load} + CASE WHEN {vendor_id} = %s THEN 1 ELSE -1 END "  # noqa: S608
        f"WHERE {vendor_id} IN (SELECT {vendor_id} FROM {vendors} "
        f"WHERE {vendor_id} IN ({ids}) ORDER BY {vendor_id}{lock}) AND {moves}"
    )


def _vendor_load_move(*, order: Order, old_vendor_id: int | None, new_vendor_id: int) -> None:
    """Count the order out of its old vendor and into the new one (part of
    ``order_reassign_vendor``'s transaction, after its history row)."""
    # One statement moves the order's load from the old vendor to the new
    # one; the capacity check sits in the WHERE so two concurrent
    # reassignments cannot overfill a vendor. It comes after the history
    # row: concurrent reassignments all want the best-ranked vendor's row,
    # so its lock should be held for as little as possible before commit.
    # The order's row lock (taken by _compare_and_set's UPDATE) serialises every
    # change to this order, so the "never had it" check cannot race.
    from_a_vendor = old_vendor_id is not None
    vendor_ids = [old_vendor_id, new_vendor_id] if from_a_vendor else [new_vendor_id]
    params = [new_vendor_id, *vendor_ids]
    if from_a_vendor:
        params.append(old_vendor_id)
    params += [new_vendor_id, sql.prepared(Vendor, "is_active", True), order.pk]

    def moved(rows: int) -> None:
        if rows == len(vendor_ids):
            return
        # Why the new vendor's row did not move. It is locked by the statement
        # (its FOR UPDATE), so it reads as the statement saw it; it is read
        # rather than the assignments because a pipelined block's upsert
        # (orders.sql.pipelined) has written this order's row for it by now.
        has_room = Vendor.objects.filter(
            pk=new_vendor_id, is_active=True, open_orders__lt=F("capacity")
        ).exists()
        if has_room:
            raise InvalidTransition(
                f"vendor {new_vendor_id} already had order {order.number}", field="vendor"
            )
        raise NoVendorAvailable(f"vendor {new_vendor_id} is inactive or at capacity")

    sql.execute(_vendor_load_move_sql(connection.vendor, from_a_vendor), params, check=moved)


def _assignments_swap(
    *, order_id: int, old_vendor_id: int | None, new_vendor_id: int, now: datetime
) -> None:
    """End the old vendor's assignment and start the new one's (same transaction)."""
    # One upsert keyed on (order, vendor): ends the old assignment (the row
    # exists, so only ended_at/outcome are written) and starts the new one.
    assignments = [VendorAssignment(order_id=order_id, vendor_id=new_vendor_id, assigned_at=now)]
    if old_vendor_id is not None:
        assignments.append(
            VendorAssignment(
                order_id=order_id,
                vendor_id=old_vendor_id,
                assigned_at=now,
                ended_at=now,
                outcome=AssignmentOutcome.REASSIGNED,
            )
        )
    sql.rows_insert(assignments, unique=("order", "vendor"), update=("ended_at", "outcome"))


def order_reassign_vendor(
    *,
    order: Order,
    vendor: Vendor | int,
    actor: Actor,
    reason: str,
    expected_status: str | None = None,
    expected_clock: datetime | None = None,
    now: datetime | None = None,
) -> Order:
    """Give the order to another vendor and put it back to PENDING.

    Legal from PENDING, CONFIRMED and ACCEPTED. The new vendor must never
    have had the order (a database constraint on assignments) and must have
    free capacity (checked in the same UPDATE that counts the order in).
    """
    now = now or timezone.now()
    new_vendor_id = vendor if isinstance(vendor, int) else vendor.pk
    from_status = expected_status or order.status
    if from_status not in REASSIGNABLE_STATUSES:
        raise InvalidTransition(
            f"an order in {from_status} cannot be reassigned (only "
            f"{', '.join(REASSIGNABLE_STATUSES)})",
            field="status",
        )
    old_vendor_id = order.vendor_id
    if new_vendor_id == old_vendor_id:
        raise InvalidTransition("the order already has this vendor", field="vendor")
    with transaction.atomic(savepoint=False):
        _compare_and_set(
            order=order,
            expected_status=from_status,
            expected_clock=expected_clock,
            now=now,
            status=OrderStatus.PENDING,
            status_changed_at=now,
            vendor_id=new_vendor_id,
            vendor=vendor if isinstance(vendor, Vendor) else None,  # issue 18: due_at
        )
        _history(
            order=order,
            from_status=from_status,
            to_status=OrderStatus.PENDING,
            actor=actor,
            reason=reason,
            now=now,
            from_vendor_id=old_vendor_id,
            to_vendor_id=new_vendor_id,
        )
        _vendor_load_move(order=order, old_vendor_id=old_vendor_id, new_vendor_id=new_vendor_id)
        _assignments_swap(
            order_id=order.pk, old_vendor_id=old_vendor_id, new_vendor_id=new_vendor_id, now=now
        )
    return order


def order_restart_clock(
    *,
    order: Order,
    actor: Actor,
    reason: str,
    expected_status: str | None = None,
    expected_clock: datetime | None = None,
    now: datetime | None = None,
) -> Order:
    """Restart the stuck clock without a status change (a workflow step was re-sent)."""
    now = now or timezone.now()
    status = expected_status or order.status
    if status not in TRANSITIONS or not TRANSITIONS[status]:
        raise InvalidTransition(f"an order in {status} has no workflow to retry", field="status")
    with transaction.atomic(savepoint=False):
        _compare_and_set(
            order=order, expected_status=status, expected_clock=expected_clock, now=now
        )
        _history(
            order=order,
            from_status=status,
            to_status=status,
            actor=actor,
            reason=reason,
            now=now,
            from_vendor_id=order.vendor_id,
            to_vendor_id=order.vendor_id,
        )
    return order
