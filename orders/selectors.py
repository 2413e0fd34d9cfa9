"""Reads of the marketplace."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import (
    BooleanField,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from orders.models import (
    OPEN_STATUSES,
    CreditAccount,
    CreditEntry,
    MessageKind,
    Order,
    OrderStatusChange,
    Vendor,
    VendorAssignment,
    VendorCircuit,
    VendorMessage,
)


def vendor_candidates(
    *,
    order_id: int | OuterRef,
    now: datetime | None = None,
    offers_per_minute: int = 0,
    headroom: int = 0,
) -> QuerySet[Vendor]:
    """Active vendors with free capacity that never had the order, best first.

    Ranked by acceptance rate, then by free capacity, then by id so the choice
    is deterministic; with ``headroom`` > 0 a vendor with at most that many
    free slots comes after every roomier one (issue 16: a full vendor given
    one slot back does not draw every concurrent reassignment into a race).
    ``order_id`` may be an ``OuterRef`` so the healing load can fetch its
    candidate in the same statement. ``offers_per_minute`` > 0
    leaves out a vendor that had that many offers in the last minute (issue
    18: a recovering vendor is not flooded).
    """
    now = now or timezone.now()
    # Inside a subquery an outer reference must reach one level further out.
    order_ref = OuterRef(order_id) if isinstance(order_id, OuterRef) else order_id
    had_order = VendorAssignment.objects.filter(order_id=order_ref, vendor_id=OuterRef("pk"))
    # Issue 18 (invariant 14): no offer to a vendor whose circuit is open or
    # whose one half-open probe is out (orders.health).
    blocked = (
        VendorCircuit.objects.filter(vendor_id=OuterRef("pk"))
        .exclude(state="CLOSED")
        .filter(Q(retry_at__isnull=True) | Q(retry_at__gt=now))
    )
    vendors = (
        Vendor.objects.filter(is_active=True, open_orders__lt=F("capacity"))
        .exclude(Exists(had_order))
        .exclude(Exists(blocked))
    )
    if offers_per_minute > 0:
        recent = (
            VendorMessage.objects.filter(
                vendor_id=OuterRef("pk"),
                kind=MessageKind.OFFER,
                created_at__gt=now - timedelta(minutes=1),
            )
            .order_by()
            .values("vendor_id")
            .annotate(offers=Count("pk"))
            .values("offers")
        )
        vendors = vendors.alias(recent_offers=Coalesce(Subquery(recent), 0)).filter(
            recent_offers__lt=offers_per_minute
        )
    ranking: list[Any] = ["-acceptance_rate", "open_orders", "id"]
    if headroom > 0:
        vendors = vendors.alias(
            nearly_full=ExpressionWrapper(
                Q(capacity__lte=F("open_orders") + headroom), output_field=BooleanField()
            )
        )
        ranking.insert(0, "nearly_full")
    return vendors.order_by(*ranking)


def vendor_select(
    *,
    order_id: int,
    offers_per_minute: int = 0,
    spread: int = 1,
    spread_key: int = 0,
    headroom: int = 0,
) -> Vendor | None:
    """The vendor an order goes to: the ``spread_key mod n``-th of the first
    ``spread`` candidates (issue 16: concurrent reassignments spread out)."""
    ranked = vendor_candidates(
        order_id=order_id, offers_per_minute=offers_per_minute, headroom=headroom
    )
    if spread <= 1:
        return ranked.first()
    top = list(ranked[:spread])
    return top[spread_key % len(top)] if top else None


def credit_balance(*, account: CreditAccount) -> Decimal:
    """The ledger's sum: charges are negative, refunds positive."""
    total = CreditEntry.objects.filter(account=account).aggregate(total=Sum("amount"))["total"]
    return total or Decimal("0")


# --- The vendor and order APIs (issue 14) -----------------------------------


def vendor_orders_list(*, vendor_id: int) -> QuerySet[Order]:
    """The vendor's open orders, offers it has not confirmed yet (PENDING) included."""
    return Order.objects.filter(vendor_id=vendor_id, status__in=OPEN_STATUSES).order_by("id")


def vendor_order_get(*, vendor_id: int, order_id: int) -> Order | None:
    """The order if it is assigned to this vendor now; None otherwise (no leak)."""
    return Order.objects.filter(pk=order_id, vendor_id=vendor_id).first()


def order_get(*, order_id: int) -> Order | None:
    return Order.objects.select_related("buyer", "vendor").filter(pk=order_id).first()


def order_history(*, order: Order) -> QuerySet[OrderStatusChange]:
    return order.status_changes.order_by("created_at", "id")


def order_healings(*, order: Order) -> list[dict[str, Any]]:
    """The order's healings, read through the reverse relation so orders never
    imports healing (docs/ARCHITECTURE.md: healing -> orders only)."""
    # Without healing's models mypy may not know the reverse accessor.
    related: Any = order.healing_actions  # type: ignore[attr-defined,unused-ignore]
    rows = related.order_by("created_at", "id").values(
        "id",
        "trigger",
        "issue_type",
        "recovery_action",
        "recovery_status",
        "detected_status",
        "resulting_status",
        "previous_vendor_id",
        "new_vendor_id",
        "created_at",
        "completed_at",
    )
    return [dict(row) for row in rows]
