"""What a vendor may do to an order assigned to it, through the vendor API.

Each action is one ``orders.services`` change whose history row's actor is
the vendor, guarded by the order still being this vendor's (compare-and-set
on status and vendor): an action racing a reassignment or a healing loses
cleanly with a 409, it never acts on an order that moved to someone else.
"""

from __future__ import annotations

from django.db import transaction

from orders import services
from orders.errors import DomainError, InvalidTransition
from orders.models import Order, OrderStatus, Vendor
from orders.selectors import vendor_order_get

# action -> (the status it moves the order to, the status it needs)
VENDOR_ACTIONS: dict[str, tuple[str, str]] = {
    "confirm": (OrderStatus.CONFIRMED, OrderStatus.PENDING),
    "accept": (OrderStatus.ACCEPTED, OrderStatus.CONFIRMED),
    "start": (OrderStatus.PROCESSING, OrderStatus.ACCEPTED),
    "ship": (OrderStatus.SHIPPED, OrderStatus.PROCESSING),
    "deliver": (OrderStatus.DELIVERED, OrderStatus.SHIPPED),
}
DECLINE = "decline"


class VendorOrderNotFound(DomainError):
    code = "not_found"
    http_status = 404


def vendor_order_get_or_404(*, vendor: Vendor, order_id: int) -> Order:
    order = vendor_order_get(vendor_id=vendor.pk, order_id=order_id)
    if order is None:
        # Another vendor's order and no order at all look the same.
        raise VendorOrderNotFound(f"you have no order {order_id}", field="orderId")
    return order


def vendor_order_act(*, vendor: Vendor, order_id: int, action: str) -> Order:
    """confirm / accept / start / ship / deliver, or a 409 naming the current status."""
    to_status, needs = VENDOR_ACTIONS[action]
    order = vendor_order_get_or_404(vendor=vendor, order_id=order_id)
    if order.status != needs:
        raise InvalidTransition(
            f"order {order.number} is {order.status}: {action} needs it {needs}",
            field="status",
        )
    with transaction.atomic():
        return services.order_transition(
            order=order,
            to_status=to_status,
            actor=services.Actor.vendor(),
            reason=f"vendor {vendor.pk}: {action}",
            expected_status=needs,
            expected_vendor_id=vendor.pk,
        )


def vendor_order_decline(*, vendor: Vendor, order_id: int, reason: str) -> Order:
    """Give the order back; a reassignment starts in the same transaction."""
    order = vendor_order_get_or_404(vendor=vendor, order_id=order_id)
    with transaction.atomic():
        return services.order_vendor_decline(order=order, vendor_id=vendor.pk, reason=reason)
