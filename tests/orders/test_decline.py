"""A vendor's decline starts a REASSIGN_VENDOR healing in the same request (issue 14)."""

from __future__ import annotations

import pytest

from orders.models import (
    ActorType,
    AssignmentOutcome,
    OrderStatus,
    OrderStatusChange,
    VendorAssignment,
)
from tests.api.helpers import assert_error
from tests.factories import OrderFactory, VendorFactory

pytestmark = pytest.mark.django_db

BASE = "/api/v1/vendor/orders"


def act(client, order_id, action, **body):
    if action == "decline":
        body.setdefault("reason", "out of stock")
    return client.post(f"{BASE}/{order_id}/{action}", body, format="json")


@pytest.mark.parametrize(
    "status", [OrderStatus.PENDING, OrderStatus.CONFIRMED, OrderStatus.ACCEPTED]
)
def test_decline_reassigns_within_the_same_request(
    vendor_client, django_capture_on_commit_callbacks, status
):
    declining = VendorFactory(acceptance_rate=0.99)
    other = VendorFactory(acceptance_rate=0.5)
    order = OrderFactory(vendor=declining, status=status)
    client = vendor_client(declining)
    with django_capture_on_commit_callbacks(execute=True):
        response = act(client, order.pk, "decline", reason="no stock")
    assert response.status_code == 200, response.content
    assert response.json()["order"] == {
        "id": order.pk,
        "number": order.number,
        "status": "DECLINED",
    }
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING
    assert order.vendor_id == other.pk
    healing = order.healing_actions.get()
    assert healing.trigger == "VENDOR_DECLINED"
    assert healing.recovery_action == "REASSIGN_VENDOR"
    assert healing.recovery_status == "SUCCESS"
    assert healing.new_vendor_id == other.pk
    declined = VendorAssignment.objects.get(order=order, vendor=declining)
    assert declined.outcome == AssignmentOutcome.DECLINED
    change = OrderStatusChange.objects.filter(order=order, actor_type=ActorType.VENDOR).get()
    assert (change.from_vendor_id, change.to_vendor_id) == (declining.pk, None)
    assert "no stock" in change.reason
    # The declining vendor no longer sees it and never gets it back.
    assert client.get(BASE).json()["count"] == 0
    assert_error(client.get(f"{BASE}/{order.pk}"), 404, "not_found", "orderId")
    declining.refresh_from_db()
    assert declining.open_orders == 0


def test_decline_with_no_other_vendor_leaves_it_pending_without_vendor(
    vendor_client, django_capture_on_commit_callbacks
):
    vendor = VendorFactory()
    order = OrderFactory(vendor=vendor)
    with django_capture_on_commit_callbacks(execute=True):
        assert act(vendor_client(vendor), order.pk, "decline").status_code == 200
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING and order.vendor_id is None
    healing = order.healing_actions.get()
    assert healing.trigger == "VENDOR_DECLINED"
    assert healing.recovery_status == "FAILED"
