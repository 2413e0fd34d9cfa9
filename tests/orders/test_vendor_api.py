"""The vendor API: authentication, isolation, transitions, decline (issue 14)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from orders.credentials import vendor_api_keys_revoke
from orders.models import (
    ActorType,
    Order,
    OrderStatus,
    OrderStatusChange,
)
from orders.vendor_actions import VENDOR_ACTIONS
from tests.api.helpers import assert_error, bearer_client
from tests.factories import OrderFactory, VendorFactory

pytestmark = pytest.mark.django_db

BASE = "/api/v1/vendor/orders"
ACTIONS = [*VENDOR_ACTIONS, "decline"]


def act(client, order_id, action, **body):
    if action == "decline":
        body.setdefault("reason", "out of stock")
    return client.post(f"{BASE}/{order_id}/{action}", body, format="json")


# --- Authentication ------------------------------------------------------------


def test_unknown_key_is_a_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Api-Key abcdefgh.not-a-real-key")
    response = client.get(BASE)
    assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"] == "Api-Key"


def test_missing_key_is_a_401():
    assert_error(APIClient().get(BASE), 401, "not_authenticated")


def test_revoked_key_is_a_401(vendor_client):
    vendor = VendorFactory()
    client = vendor_client(vendor)
    assert client.get(BASE).status_code == 200
    vendor_api_keys_revoke(vendor=vendor)
    assert_error(client.get(BASE), 401, "authentication_failed")


def test_staff_jwt_does_not_open_the_vendor_api(make_user):
    assert_error(bearer_client(make_user("ADMIN")).get(BASE), 401, "not_authenticated")


def test_vendor_key_does_not_open_the_staff_api(vendor_client):
    response = vendor_client(VendorFactory()).get("/api/v1/self-healing/stuck-orders")
    assert response.status_code == 401


# --- Isolation -------------------------------------------------------------------


def test_vendor_a_cannot_see_or_act_on_vendor_b_order(vendor_client):
    vendor_a, vendor_b = VendorFactory(), VendorFactory()
    order_b = OrderFactory(vendor=vendor_b)
    client_a = vendor_client(vendor_a)
    listed = client_a.get(BASE).json()
    assert listed["count"] == 0 and listed["orders"] == []
    missing = assert_error(client_a.get(f"{BASE}/{order_b.pk}"), 404, "not_found", "orderId")
    nothing = assert_error(client_a.get(f"{BASE}/99999999"), 404, "not_found", "orderId")
    # The same answer as for an order that does not exist: nothing leaks.
    assert missing["message"].replace(str(order_b.pk), "N") == nothing["message"].replace(
        "99999999", "N"
    )
    for action in ACTIONS:
        assert_error(act(client_a, order_b.pk, action), 404, "not_found", "orderId")
    order_b.refresh_from_db()
    assert order_b.status == OrderStatus.PENDING and order_b.vendor_id == vendor_b.pk
    assert vendor_client(vendor_b).get(BASE).json()["count"] == 1


def test_list_holds_open_orders_and_offers_only(vendor_client):
    vendor = VendorFactory()
    offer = OrderFactory(vendor=vendor)
    working = OrderFactory(vendor=vendor, status=OrderStatus.PROCESSING)
    OrderFactory(vendor=vendor, status=OrderStatus.DELIVERED)
    body = vendor_client(vendor).get(BASE).json()
    assert [row["id"] for row in body["orders"]] == [offer.pk, working.pk]
    assert body["orders"][0]["act_by"] is not None


# --- Transitions ---------------------------------------------------------------

ILLEGAL = [
    (status, action)
    for status in OrderStatus.values
    for action in ACTIONS
    if not (action in VENDOR_ACTIONS and VENDOR_ACTIONS[action][1] == status)
    and not (
        action == "decline"
        and status in (OrderStatus.PENDING, OrderStatus.CONFIRMED, OrderStatus.ACCEPTED)
    )
]


@pytest.mark.parametrize(("status", "action"), ILLEGAL)
def test_every_illegal_transition_is_a_409_naming_the_status(vendor_client, status, action):
    vendor = VendorFactory()
    order = OrderFactory(vendor=vendor, status=status)
    error = assert_error(
        act(vendor_client(vendor), order.pk, action), 409, "invalid_transition", "status"
    )
    assert status in error["message"]
    order.refresh_from_db()
    assert order.status == status


@pytest.mark.parametrize("action", list(VENDOR_ACTIONS))
def test_each_legal_action_moves_the_order_with_a_vendor_history_row(vendor_client, action):
    to_status, needs = VENDOR_ACTIONS[action]
    vendor = VendorFactory()
    order = OrderFactory(vendor=vendor, status=needs)
    response = act(vendor_client(vendor), order.pk, action)
    assert response.status_code == 200, response.content
    assert response.json()["order"]["status"] == to_status
    change = OrderStatusChange.objects.filter(order=order).last()
    assert (change.from_status, change.to_status) == (needs, to_status)
    assert change.actor_type == ActorType.VENDOR


def test_decline_needs_a_reason(vendor_client):
    vendor = VendorFactory()
    order = OrderFactory(vendor=vendor)
    client = vendor_client(vendor)
    assert_error(
        client.post(f"{BASE}/{order.pk}/decline", {}, format="json"), 400, "required", "reason"
    )
    assert_error(
        client.post(f"{BASE}/{order.pk}/decline", {"reason": "  "}, format="json"),
        400,
        "blank",
        "reason",
    )


def test_a_non_integer_id_is_a_400(vendor_client):
    assert_error(vendor_client(VendorFactory()).get(f"{BASE}/abc"), 400, "invalid", "orderId")


def test_an_action_on_an_order_reassigned_meanwhile_is_refused(vendor_client):
    """The compare-and-set includes the vendor: a stale read never acts on another's order."""
    from django.db import transaction

    from orders import services
    from orders.errors import OrderMovedOn

    first, second = VendorFactory(), VendorFactory()
    order = OrderFactory(vendor=first)
    stale = Order.objects.get(pk=order.pk)
    services.order_reassign_vendor(
        order=order, vendor=second, actor=services.Actor.healing(), reason="test"
    )
    with pytest.raises(OrderMovedOn), transaction.atomic():
        services.order_transition(
            order=stale,
            to_status=OrderStatus.CONFIRMED,
            actor=services.Actor.vendor(),
            expected_status=OrderStatus.PENDING,
            expected_vendor_id=first.pk,
        )
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING and order.vendor_id == second.pk
