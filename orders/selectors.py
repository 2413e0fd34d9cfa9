"""Reads of the marketplace."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Exists, F, OuterRef, QuerySet, Sum

from orders.models import CreditAccount, CreditEntry, Vendor, VendorAssignment


def vendor_candidates(*, order_id: int | OuterRef) -> QuerySet[Vendor]:
    """Active vendors with free capacity that never had the order, best first.

    Ranked by acceptance rate, then by free capacity, then by id so the choice
    is deterministic. ``order_id`` may be an ``OuterRef`` so the healing load
    can fetch its candidate in the same statement.
    """
    # Inside a subquery an outer reference must reach one level further out.
    order_ref = OuterRef(order_id) if isinstance(order_id, OuterRef) else order_id
    had_order = VendorAssignment.objects.filter(order_id=order_ref, vendor_id=OuterRef("pk"))
    return (
        Vendor.objects.filter(is_active=True, open_orders__lt=F("capacity"))
        .exclude(Exists(had_order))
        .order_by("-acceptance_rate", "open_orders", "id")
    )


def vendor_select(*, order_id: int) -> Vendor | None:
    return vendor_candidates(order_id=order_id).first()


def credit_balance(*, account: CreditAccount) -> Decimal:
    """The ledger's sum: charges are negative, refunds positive."""
    total = CreditEntry.objects.filter(account=account).aggregate(total=Sum("amount"))["total"]
    return total or Decimal("0")
