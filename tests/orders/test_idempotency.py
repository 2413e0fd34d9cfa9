"""Idempotency-Key, Stripe-style: replay, 422 on another body, expiry, two threads (issue 14)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from orders.models import CreditEntry, IdempotencyKey, Order, OrderStatus
from tests.api.helpers import assert_error
from tests.factories import CreditAccountFactory, OrderFactory, VendorFactory

URL = "/api/v1/orders"


def body(buyer, amount="50.00"):
    return {"buyerId": buyer.pk, "amount": amount, "paymentMethod": "CREDIT"}


@pytest.mark.django_db
def test_same_key_and_body_replays_the_first_response_with_no_second_effect(marketplace_api):
    buyer = CreditAccountFactory().buyer
    first = marketplace_api.post(URL, body(buyer), format="json", HTTP_IDEMPOTENCY_KEY="abc")
    second = marketplace_api.post(URL, body(buyer), format="json", HTTP_IDEMPOTENCY_KEY="abc")
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1
    assert CreditEntry.objects.count() == 1


@pytest.mark.django_db
def test_same_key_with_another_body_is_a_422(marketplace_api):
    buyer = CreditAccountFactory().buyer
    marketplace_api.post(URL, body(buyer), format="json", HTTP_IDEMPOTENCY_KEY="abc")
    other = marketplace_api.post(
        URL, body(buyer, "51.00"), format="json", HTTP_IDEMPOTENCY_KEY="abc"
    )
    assert_error(other, 422, "idempotency_key_reused", "Idempotency-Key")
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_same_key_on_another_endpoint_is_a_422(marketplace_api):
    order = OrderFactory()
    marketplace_api.post(
        URL, body(CreditAccountFactory().buyer), format="json", HTTP_IDEMPOTENCY_KEY="abc"
    )
    response = marketplace_api.post(
        f"{URL}/{order.pk}/cancel", {}, format="json", HTTP_IDEMPOTENCY_KEY="abc"
    )
    assert_error(response, 422, "idempotency_key_reused", "Idempotency-Key")
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING


@pytest.mark.django_db
def test_keys_are_scoped_per_credential(marketplace_api, admin_api):
    buyer = CreditAccountFactory().buyer
    marketplace_api.post(URL, body(buyer), format="json", HTTP_IDEMPOTENCY_KEY="abc")
    response = admin_api.post(URL, body(buyer), format="json", HTTP_IDEMPOTENCY_KEY="abc")
    assert response.status_code == 201 and "Idempotent-Replayed" not in response
    assert Order.objects.count() == 2


@pytest.mark.django_db
def test_a_key_expires_after_its_ttl(marketplace_api, settings):
    settings.IDEMPOTENCY_KEY_TTL_SECONDS = 60
    buyer = CreditAccountFactory().buyer
    marketplace_api.post(URL, body(buyer), format="json", HTTP_IDEMPOTENCY_KEY="abc")
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        again = marketplace_api.post(URL, body(buyer), format="json", HTTP_IDEMPOTENCY_KEY="abc")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again
    assert Order.objects.count() == 2
    assert IdempotencyKey.objects.count() == 1


@pytest.mark.django_db
def test_an_error_answer_is_replayed_too(marketplace_api):
    order = OrderFactory(status=OrderStatus.DELIVERED)
    url = f"{URL}/{order.pk}/cancel"
    first = marketplace_api.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="x")
    second = marketplace_api.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="x")
    assert first.status_code == second.status_code == 409
    assert first.json() == second.json()


@pytest.mark.django_db
def test_vendor_actions_replay_with_their_key(vendor_client):
    vendor = VendorFactory()
    order = OrderFactory(vendor=vendor)
    client = vendor_client(vendor)
    url = f"/api/v1/vendor/orders/{order.pk}/confirm"
    first = client.post(url, HTTP_IDEMPOTENCY_KEY="v-1")
    second = client.post(url, HTTP_IDEMPOTENCY_KEY="v-1")
    assert first.status_code == second.status_code == 200
    assert second["Idempotent-Replayed"] == "true"
    # Without the key the repeat is an honest 409: the order is CONFIRMED now.
    assert client.post(url).status_code == 409
    assert order.status_changes.filter(to_status=OrderStatus.CONFIRMED).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", " ", "x" * 256])
def test_a_malformed_key_is_a_400(marketplace_api, key):
    response = marketplace_api.post(
        URL, body(CreditAccountFactory().buyer), format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "Idempotency-Key"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_threads_with_one_key_create_one_order_and_one_charge(marketplace_user, api_defaults):
    """Two real connections race with the same key: one order, one charge, one answer."""
    buyer = CreditAccountFactory().buyer
    token = str(RefreshToken.for_user(marketplace_user).access_token)
    barrier = threading.Barrier(2)
    results: list = []

    def post() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        try:
            barrier.wait()
            response = client.post(URL, body(buyer), format="json", HTTP_IDEMPOTENCY_KEY="race")
            results.append((response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [status for status, _ in results] == [201, 201]
    assert results[0][1] == results[1][1]
    assert Order.objects.count() == 1
    assert CreditEntry.objects.filter(kind="CHARGE").count() == 1


@pytest.mark.django_db
def test_an_answer_echoing_a_nul_character_is_stored_and_replayed(marketplace_api):
    """jsonb refuses NUL: the stored answer is escaped JSON text (found by schemathesis)."""
    payload = {**body(CreditAccountFactory().buyer), "bad\u0000key": 1}
    first = marketplace_api.post(URL, payload, format="json", HTTP_IDEMPOTENCY_KEY="nul")
    second = marketplace_api.post(URL, payload, format="json", HTTP_IDEMPOTENCY_KEY="nul")
    assert first.status_code == second.status_code == 400
    assert first.json() == second.json()
    assert second["Idempotent-Replayed"] == "true"
