"""Intake checks the buyer's credit limit: past it, a 409 and nothing written (issue 14)."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from orders import services
from orders.models import CreditEntry, Order, PaymentMethod
from tests.api.helpers import assert_error
from tests.factories import BuyerFactory, CreditAccountFactory

URL = "/api/v1/orders"


def place(client, buyer, amount, key, method="CREDIT"):
    return client.post(
        URL,
        {"buyerId": buyer.pk, "amount": amount, "paymentMethod": method},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def _account(limit: str, spent: str | None = None):
    """A credit account with ``limit``, ``spent`` of it charged by an earlier order."""
    account = CreditAccountFactory(credit_limit=Decimal(limit))
    earlier = None
    if spent is not None:
        earlier = services.order_create(
            buyer=account.buyer, total=Decimal(spent), payment_method=PaymentMethod.CREDIT
        )
    return account.buyer, earlier


@pytest.mark.django_db
def test_an_order_past_the_available_credit_is_a_409_naming_amount_and_writes_nothing(
    marketplace_api,
):
    buyer, _ = _account("100.00", spent="70.00")
    orders, entries = Order.objects.count(), CreditEntry.objects.count()

    refused = place(marketplace_api, buyer, "30.01", "over")

    error = assert_error(refused, 409, "credit_limit_exceeded", "amount")
    assert "30.01" in error["message"] and "30.00" in error["message"]
    assert (Order.objects.count(), CreditEntry.objects.count()) == (orders, entries)
    # Up to the limit exactly is fine.
    assert place(marketplace_api, buyer, "30.00", "exact").status_code == 201
    assert_error(
        place(marketplace_api, buyer, "0.01", "one-cent"), 409, "credit_limit_exceeded", "amount"
    )


@pytest.mark.django_db
def test_a_refund_gives_the_credit_back(marketplace_api):
    buyer, earlier = _account("100.00", spent="80.00")
    assert place(marketplace_api, buyer, "50.00", "k-1").status_code == 409
    services.order_cancel(order=earlier, actor=services.Actor.system(), reason="test")
    assert place(marketplace_api, buyer, "50.00", "k-2").status_code == 201


@pytest.mark.django_db
def test_credit_needs_a_credit_account_other_payment_methods_do_not(marketplace_api):
    buyer = BuyerFactory()
    assert_error(
        place(marketplace_api, buyer, "1.00", "c"), 409, "credit_limit_exceeded", "paymentMethod"
    )
    assert not Order.objects.filter(buyer=buyer).exists()
    assert place(marketplace_api, buyer, "1.00", "card", method="CARD").status_code == 201


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_intakes_cannot_both_pass_the_limit(marketplace_user, api_defaults):
    """Two real connections, different keys, 60 + 60 against a limit of 100: one wins."""
    buyer, _ = _account("100.00")
    token = str(RefreshToken.for_user(marketplace_user).access_token)
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def post(key: str) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        try:
            barrier.wait()
            statuses.append(place(client, buyer, "60.00", key).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(f"race-{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [201, 409]
    assert Order.objects.filter(buyer=buyer).count() == 1
    assert CreditEntry.objects.filter(account_id=buyer.pk, kind="CHARGE").count() == 1


@pytest.mark.django_db
def test_a_free_credit_order_is_placed_with_no_charge(marketplace_api):
    """amount 0.00 by CREDIT was a 500: a zero CHARGE breaks the ledger's sign check."""
    buyer, _ = _account("0.00")
    response = place(marketplace_api, buyer, "0.00", "zero")
    assert response.status_code == 201, response.content
    order = Order.objects.get(pk=response.json()["order"]["id"])
    assert not CreditEntry.objects.filter(order=order).exists()
    services.order_cancel(order=order, actor=services.Actor.system(), reason="test")
    assert not CreditEntry.objects.filter(order=order).exists()
