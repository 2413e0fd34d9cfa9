"""The only code that changes an order's status (invariant 1).

Every change is a compare-and-set ``UPDATE ... WHERE status = <expected>``
(and, for healing, ``AND stuck_since = <detected clock>``) followed by its
history row in the same transaction. A caller whose expectation no longer
holds gets ``OrderMovedOn`` and nothing is written.

The services open their transaction with ``savepoint=False``: called alone
they are one transaction; called inside a healing's apply step they join it
without extra SAVEPOINT statements, and any error aborts the whole step. A
caller that wants to catch ``OrderMovedOn`` and carry on inside its own
transaction wraps the call in ``transaction.atomic()``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Case, Exists, F, OuterRef, Q, Value, When
from django.utils import timezone

from orders.errors import (
    CreditLimitExceeded,
    InvalidTransition,
    NoVendorAvailable,
    OrderMovedOn,
)
from orders.models import (
    REASSIGNABLE_STATUSES,
    ActorType,
    AssignmentOutcome,
    Buyer,
    CreditAccount,
    CreditEntry,
    CreditEntryKind,
    Order,
    OrderStatus,
    OrderStatusChange,
    PaymentMethod,
    Vendor,
    VendorAssignment,
    status_write_allowed,
)
from orders.selectors import credit_balance
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


# --- Creation -----------------------------------------------------------------


def order_create(
    *,
    buyer: Buyer,
    total: Decimal,
    payment_method: str,
    vendor: Vendor | None = None,
    actor: Actor | None = None,
    number: str | None = None,
    currency: str = "USD",
    now: datetime | None = None,
) -> Order:
    """Place an order (PENDING), charge credit when paid by CREDIT, offer it to a vendor."""
    now = now or timezone.now()
    actor = actor or Actor.system()
    with transaction.atomic(), _status_writes():
        order = Order.objects.create(
            number=number or _next_number(),
            buyer=buyer,
            vendor=vendor,
            status=OrderStatus.PENDING,
            payment_method=payment_method,
            total=total,
            currency=currency,
            created_at=now,
            updated_at=now,
            status_changed_at=now,
            stuck_since=now,
            # Issue 18: the vendor-time due time (None without a calendar).
            due_at=order_due_at(
                status=OrderStatus.PENDING,
                vendor_id=vendor.pk if vendor else None,
                start=now,
                vendor=vendor,
            ),
        )
        _history(
            order=order,
            from_status="",
            to_status=OrderStatus.PENDING,
            actor=actor,
            reason="order placed",
            now=now,
            to_vendor_id=vendor.pk if vendor else None,
        )
        if vendor is not None:
            Vendor.objects.filter(pk=vendor.pk).update(open_orders=F("open_orders") + 1)
            VendorAssignment.objects.create(order=order, vendor=vendor, assigned_at=now)
        # A free order has nothing to charge (a zero charge breaks the ledger's
        # sign check; credit_refund skips it the same way).
        if payment_method == PaymentMethod.CREDIT and total > 0:
            CreditAccount.objects.get_or_create(buyer=buyer)
            CreditEntry.objects.create(
                account_id=buyer.pk,
                order=order,
                kind=CreditEntryKind.CHARGE,
                amount=-total,
            )
    return order


def _next_number() -> str:
    # Unique without a counter row: time-ordered and random enough for humans.
    import secrets

    return f"ORD-{timezone.now():%Y%m%d}-{secrets.token_hex(4).upper()}"


# --- Forward progress ---------------------------------------------------------


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


# --- Repairs ------------------------------------------------------------------


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
    vendor_ids = [new_vendor_id] if old_vendor_id is None else [old_vendor_id, new_vendor_id]
    had_order = VendorAssignment.objects.filter(order_id=order.pk, vendor_id=OuterRef("pk"))
    # Both rows are locked in id order by a FOR UPDATE subquery of the
    # same statement: locked in scan order, two reassignments moving
    # orders in opposite directions between the same two vendors
    # deadlock (bench_healing hit it at 10k concurrent healings).
    in_id_order = (
        Vendor.objects.filter(pk__in=vendor_ids).order_by("pk").select_for_update().values("pk")
    )
    moved = (
        Vendor.objects.filter(pk__in=in_id_order)
        .filter(
            Q(pk=old_vendor_id)
            | Q(pk=new_vendor_id, is_active=True, open_orders__lt=F("capacity"))
            & ~Exists(had_order)
        )
        .update(
            open_orders=F("open_orders")
            + Case(When(pk=new_vendor_id, then=Value(1)), default=Value(-1))
        )
    )
    if moved != len(vendor_ids):
        if VendorAssignment.objects.filter(order_id=order.pk, vendor_id=new_vendor_id).exists():
            raise InvalidTransition(
                f"vendor {new_vendor_id} already had order {order.number}", field="vendor"
            )
        raise NoVendorAvailable(f"vendor {new_vendor_id} is inactive or at capacity")


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
    VendorAssignment.objects.bulk_create(
        assignments,
        update_conflicts=True,
        unique_fields=["order", "vendor"],
        update_fields=["ended_at", "outcome"],
    )


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


def credit_charge_check(*, buyer_id: int, total: Decimal) -> None:
    """Refuse a CREDIT charge of ``total`` past the buyer's available credit.

    Available = the account's ``credit_limit`` + its ledger balance (charges
    are negative). The account row is locked (``SELECT ... FOR UPDATE``) until
    the caller's transaction ends, so call it inside the transaction that
    writes the charge: a concurrent intake for the same buyer waits, then sums
    the ledger with this charge in it, and two orders cannot both pass the
    limit.
    """
    account = CreditAccount.objects.select_for_update().filter(buyer_id=buyer_id).first()
    if account is None:
        raise CreditLimitExceeded(
            f"buyer {buyer_id} has no credit account: CREDIT needs one "
            "(pay by CARD or BANK_TRANSFER)",
            field="paymentMethod",
        )
    available = account.credit_limit + credit_balance(account=account)
    if total > available:
        raise CreditLimitExceeded(
            f"amount {total} exceeds buyer {buyer_id}'s available credit {available} "
            f"(limit {account.credit_limit})",
            field="amount",
        )


def credit_refund(*, order: Order, now: datetime | None = None) -> bool:
    """Refund an order's credit charge; True when this call refunded it.

    ``INSERT ... ON CONFLICT DO NOTHING`` against the one-refund-per-order
    constraint: concurrent callers on separate connections serialise on the
    unique index, and exactly one of them inserts (invariant 5).
    """
    if order.payment_method != PaymentMethod.CREDIT or order.total <= 0:
        return False
    now = now or timezone.now()
    table = CreditEntry._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (account_id, order_id, kind, amount, created_at) "  # noqa: S608
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [order.buyer_id, order.pk, CreditEntryKind.REFUND, order.total, now],
        )
        return cursor.rowcount == 1
