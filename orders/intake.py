"""Order intake for the marketplace (``POST /api/v1/orders``)."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from orders import services
from orders.errors import DomainError
from orders.models import Buyer, MessageKind, Order, PaymentMethod, Vendor
from orders.selectors import vendor_candidates


class IntakeRefused(DomainError):
    """A reference in the request names nothing usable."""

    code = "invalid"
    http_status = 400


def order_place(
    *,
    buyer_id: int,
    total: Decimal,
    currency: str,
    payment_method: str,
    actor: services.Actor,
    vendor_id: int | None = None,
) -> Order:
    """Create the order (charging CREDIT once), assign a vendor, offer it after commit.

    A CREDIT order past the buyer's available credit is refused
    (``CreditLimitExceeded``, 409) and writes nothing.

    Without ``vendor_id`` the best-ranked candidate gets it; with none
    available it stays PENDING without a vendor, where healing finds it.
    """
    buyer = Buyer.objects.filter(pk=buyer_id).first()
    if buyer is None:
        raise IntakeRefused(f"no buyer with id {buyer_id}", field="buyerId")
    if vendor_id is not None:
        vendor = Vendor.objects.filter(pk=vendor_id, is_active=True).first()
        if vendor is None:
            raise IntakeRefused(f"no active vendor with id {vendor_id}", field="vendorId")
    else:
        # A new order has no assignments yet: any order id that names none works.
        vendor = vendor_candidates(order_id=0).first()
    with transaction.atomic():
        if payment_method == PaymentMethod.CREDIT:
            # Locks the buyer's credit account until this transaction ends.
            services.credit_charge_check(buyer_id=buyer.pk, total=total)
        order = services.order_create(
            buyer=buyer,
            total=total,
            payment_method=payment_method,
            currency=currency,
            vendor=vendor,
            actor=actor,
        )
        if vendor is not None:
            transaction.on_commit(
                lambda: _offer(order_id=order.pk, vendor_id=vendor.pk), robust=True
            )
    return order


def _offer(*, order_id: int, vendor_id: int) -> None:
    from orders.tasks import vendor_message_send

    vendor_message_send.delay(order_id, vendor_id, MessageKind.OFFER)
