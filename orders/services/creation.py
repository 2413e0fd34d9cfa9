"""Placing an order: PENDING, its history row, its vendor's load, its CREDIT charge."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from orders.models import (
    Buyer,
    CreditAccount,
    CreditEntry,
    CreditEntryKind,
    Order,
    OrderStatus,
    PaymentMethod,
    Vendor,
    VendorAssignment,
)
from orders.services.core import Actor, _history, _status_writes
from orders.vendor_time import order_due_at  # issue 18: vendor-time due times


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
                account_id=buyer.pk, order=order, kind=CreditEntryKind.CHARGE, amount=-total
            )
    return order


def _next_number() -> str:
    # Unique without a counter row: time-ordered and random enough for humans.
    import secrets

    return f"ORD-{timezone.now():%Y%m%d}-{secrets.token_hex(4).upper()}"
