"""The order API for the marketplace: intake, read, cancel (issue 14)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db.models import Sum

from orders.models import CreditEntry, CreditEntryKind, Order, OrderStatus, VendorMessage
from tests.api.helpers import assert_error
from tests.factories import (
    BuyerFactory,
    CreditAccountFactory,
    HealingActionFactory,
    OrderFactory,
    VendorFactory,
)

pytestmark = pytest.mark.django_db

URL = "/api/v1/orders"


def place(client, key="k-1", **body):
    return client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_intake_creates_a_pending_order_with_the_best_vendor_and_charges_credit_once(
    marketplace_api, django_capture_on_commit_callbacks
):
    buyer = CreditAccountFactory().buyer
    VendorFactory(acceptance_rate=0.5)
    best = VendorFactory(acceptance_rate=0.95)
    with django_capture_on_commit_callbacks(execute=True):
        response = place(marketplace_api, buyerId=buyer.pk, amount="120.50", paymentMethod="CREDIT")
    assert response.status_code == 201, response.content
    order = response.json()["order"]
    assert order["status"] == "PENDING"
    assert order["vendor_id"] == best.pk
    assert order["amount"] == "120.50" and order["currency"] == "USD"
    charges = CreditEntry.objects.filter(order_id=order["id"], kind=CreditEntryKind.CHARGE)
    assert charges.count() == 1 and charges.get().amount == Decimal("-120.50")
    # The vendor is offered the order (recorded whatever the gateway backend).
    offer = VendorMessage.objects.get(order_id=order["id"])
    assert (offer.kind, offer.vendor_id) == ("OFFER", best.pk)
    assert offer.message_id


def test_intake_with_no_vendor_available_leaves_it_pending_without_vendor(marketplace_api):
    buyer = BuyerFactory()
    response = place(marketplace_api, buyerId=buyer.pk, amount="10.00", paymentMethod="CARD")
    assert response.status_code == 201
    assert response.json()["order"]["vendor_id"] is None


def test_intake_with_a_named_vendor(marketplace_api):
    VendorFactory(acceptance_rate=0.99)
    chosen = VendorFactory(acceptance_rate=0.1)
    response = place(
        marketplace_api,
        buyerId=BuyerFactory().pk,
        amount="10.00",
        currency="EUR",
        paymentMethod="BANK_TRANSFER",
        vendorId=chosen.pk,
    )
    assert response.json()["order"]["vendor_id"] == chosen.pk
    assert response.json()["order"]["currency"] == "EUR"


def test_intake_requires_an_idempotency_key(marketplace_api):
    response = marketplace_api.post(
        URL, {"buyerId": BuyerFactory().pk, "amount": "1.00", "paymentMethod": "CARD"}
    )
    assert_error(response, 400, "idempotency_key_required", "Idempotency-Key")
    assert Order.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": "1.00", "paymentMethod": "CARD"}, "buyerId"),
        ({"buyerId": 999999, "amount": "1.00", "paymentMethod": "CARD"}, "buyerId"),
        ({"buyerId": "B", "amount": "-1", "paymentMethod": "CARD"}, "buyerId"),
        ({"amount": "-1", "paymentMethod": "CARD", "buyerId": 1}, "amount"),
        ({"buyerId": 1, "amount": "1.00", "paymentMethod": "CASH"}, "paymentMethod"),
        ({"buyerId": 1, "amount": "1.00", "paymentMethod": "CARD", "vendorId": 999}, "vendorId"),
    ],
)
def test_intake_refuses_bad_input_with_the_field(marketplace_api, body, field):
    buyer = BuyerFactory()
    body = {key: buyer.pk if value == 1 else value for key, value in body.items()}
    response = place(marketplace_api, **body)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field


@pytest.mark.parametrize("role", ["OPERATIONS", "VIEWER"])
def test_staff_roles_other_than_admin_may_not_use_the_order_api(client_for, role):
    response = place(client_for(role), buyerId=BuyerFactory().pk, amount="1", paymentMethod="CARD")
    assert_error(response, 403, "permission_denied")


def test_admin_may_place_orders(admin_api):
    response = place(admin_api, buyerId=BuyerFactory().pk, amount="1.00", paymentMethod="CARD")
    assert response.status_code == 201


def test_anonymous_and_vendor_keys_get_401(vendor_client):
    from rest_framework.test import APIClient

    assert place(APIClient(), buyerId=1, amount="1", paymentMethod="CARD").status_code == 401
    vendor = vendor_client(VendorFactory())
    assert place(vendor, buyerId=1, amount="1", paymentMethod="CARD").status_code == 401


def test_detail_has_history_and_healings(marketplace_api):
    order = OrderFactory(stuck_minutes=45)
    healing = HealingActionFactory(order=order)
    body = marketplace_api.get(f"{URL}/{order.pk}").json()
    assert body["order"]["id"] == order.pk
    assert [row["to_status"] for row in body["history"]] == ["PENDING"]
    assert [row["id"] for row in body["healings"]] == [healing.pk]
    assert body["healings"][0]["recovery_action"] == "REASSIGN_VENDOR"
    assert_error(marketplace_api.get(f"{URL}/99999999"), 404, "not_found", "orderId")


def test_cancel_refunds_exactly_once(marketplace_api):
    order = OrderFactory(total=Decimal("80.00"))
    first = marketplace_api.post(f"{URL}/{order.pk}/cancel", {"reason": "buyer left"})
    assert first.status_code == 200 and first.json()["order"]["status"] == "CANCELLED"
    again = marketplace_api.post(f"{URL}/{order.pk}/cancel", {})
    error = assert_error(again, 409, "invalid_transition", "status")
    assert "CANCELLED" in error["message"]
    refunds = CreditEntry.objects.filter(order=order, kind=CreditEntryKind.REFUND)
    assert refunds.count() == 1
    assert CreditEntry.objects.filter(order=order).aggregate(s=Sum("amount"))["s"] == 0


def test_cancel_replayed_with_its_key_is_the_same_answer(marketplace_api):
    order = OrderFactory()
    url = f"{URL}/{order.pk}/cancel"
    first = marketplace_api.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="c-1")
    replay = marketplace_api.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="c-1")
    assert first.status_code == replay.status_code == 200
    assert first.json() == replay.json()
    assert replay["Idempotent-Replayed"] == "true"
    assert order.status_changes.filter(to_status=OrderStatus.CANCELLED).count() == 1


def test_marketplace_accounts_are_not_staff_and_cannot_use_the_healing_api(
    marketplace_api, marketplace_user
):
    assert not marketplace_user.is_staff
    response = marketplace_api.get("/api/v1/self-healing/stuck-orders")
    assert response.status_code == 403
