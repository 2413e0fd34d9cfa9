"""The whole loop over HTTP only (issue 14): intake to delivery, a healing whose new
vendor takes the signed offer, and a vendor acting while a healing is in flight."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from healing.execution import healing_execute, healing_initiate, healing_request
from orders.gateway import RecordOnlyGateway
from orders.models import ActorType, OrderStatus, OrderStatusChange, VendorMessage
from tests.factories import CreditAccountFactory, OrderFactory, VendorFactory

pytestmark = pytest.mark.django_db

VENDOR = "/api/v1/vendor/orders"


@pytest.fixture
def vendor_receiver():
    """A vendor's webhook endpoint: keeps each request's headers and raw body."""
    received: list[tuple[dict, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(({k.lower(): v for k, v in self.headers.items()}, raw))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks", received
    server.shutdown()


def test_one_order_from_intake_to_delivery_over_http(
    marketplace_api, vendor_client, vendor_receiver, settings, django_capture_on_commit_callbacks
):
    url, received = vendor_receiver
    settings.VENDOR_GATEWAY_BACKEND = "webhook"
    vendor = VendorFactory(webhook_url=url)
    client = vendor_client(vendor)
    buyer = CreditAccountFactory().buyer
    with django_capture_on_commit_callbacks(execute=True):
        created = marketplace_api.post(
            "/api/v1/orders",
            {"buyerId": buyer.pk, "amount": "99.00", "paymentMethod": "CREDIT"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="intake-1",
        )
    assert created.status_code == 201, created.content
    order_id = created.json()["order"]["id"]
    # The vendor got a signed offer it can verify.
    headers, raw = received[0]
    offer = Webhook(client.webhook_secret).verify(raw, headers)
    assert offer["type"] == "order.offer" and offer["data"]["order_id"] == order_id
    assert [row["id"] for row in client.get(VENDOR).json()["orders"]] == [order_id]
    for action, status in [
        ("confirm", "CONFIRMED"),
        ("accept", "ACCEPTED"),
        ("start", "PROCESSING"),
        ("ship", "SHIPPED"),
        ("deliver", "DELIVERED"),
    ]:
        response = client.post(f"{VENDOR}/{order_id}/{action}", HTTP_IDEMPOTENCY_KEY=action)
        assert response.status_code == 200, response.content
        assert response.json()["order"]["status"] == status
    detail = marketplace_api.get(f"/api/v1/orders/{order_id}").json()
    assert detail["order"]["status"] == "DELIVERED"
    assert [row["to_status"] for row in detail["history"]] == [
        "PENDING",
        "CONFIRMED",
        "ACCEPTED",
        "PROCESSING",
        "SHIPPED",
        "DELIVERED",
    ]
    assert {row["actor_type"] for row in detail["history"][1:]} == {ActorType.VENDOR}
    assert client.get(VENDOR).json()["count"] == 0


def test_a_stuck_order_is_healed_and_the_new_vendor_accepts_the_signed_offer_over_http(
    vendor_client, vendor_receiver, settings
):
    url, received = vendor_receiver
    settings.VENDOR_GATEWAY_BACKEND = "webhook"
    silent = VendorFactory(acceptance_rate=0.2)
    new = VendorFactory(acceptance_rate=0.9, webhook_url=url)
    new_client = vendor_client(new)
    order = OrderFactory(vendor=silent, stuck_minutes=45)
    report = healing_request(order=order, requested_by=None)
    assert report.healing.recovery_status == "SUCCESS"
    headers, raw = received[-1]
    offer = Webhook(new_client.webhook_secret).verify(raw, headers)
    assert offer["type"] == "order.offer"
    assert offer["data"]["order_id"] == order.pk
    assert VendorMessage.objects.get(order=order, kind="OFFER").message_id == headers["webhook-id"]
    confirm = new_client.post(f"{VENDOR}/{order.pk}/confirm")
    accept = new_client.post(f"{VENDOR}/{order.pk}/accept")
    assert (confirm.status_code, accept.status_code) == (200, 200)
    assert accept.json()["order"]["status"] == "ACCEPTED"
    assert vendor_client(silent).get(f"{VENDOR}/{order.pk}").status_code == 404


class _VendorConfirmsMidOffer(RecordOnlyGateway):
    """While the healing offers the order to a new vendor, the old one confirms over HTTP."""

    def __init__(self, client, order_id: int) -> None:
        self.client, self.order_id = client, order_id
        self.answers: list[Any] = []  # the vendor's HTTP responses

    def send(self, message):
        if message.kind == "OFFER":
            self.answers.append(self.client.post(f"{VENDOR}/{self.order_id}/confirm"))
        return super().send(message)


def test_a_vendor_acting_while_a_healing_is_in_flight_wins_and_the_offer_is_withdrawn(
    vendor_client,
):
    slow = VendorFactory(acceptance_rate=0.2)
    VendorFactory(acceptance_rate=0.9)
    order = OrderFactory(vendor=slow, stuck_minutes=45)
    healing = healing_initiate(order=order, trigger="API")
    gateway = _VendorConfirmsMidOffer(vendor_client(slow), order.pk)
    outcome = healing_execute(healing_id=healing.pk, token=healing.claim_token, gateway=gateway)
    assert gateway.answers[0].status_code == 200, gateway.answers[0].content
    assert outcome.status == "SKIPPED"
    order.refresh_from_db()
    assert order.status == OrderStatus.CONFIRMED and order.vendor_id == slow.pk
    kinds = list(VendorMessage.objects.filter(order=order).values_list("kind", flat=True))
    assert sorted(kinds) == ["OFFER", "WITHDRAW"]
    assert not OrderStatusChange.objects.filter(order=order, actor_type="HEALING").exists()


def test_a_healing_reassigning_first_makes_the_old_vendors_late_action_a_409(vendor_client):
    slow = VendorFactory(acceptance_rate=0.2)
    VendorFactory(acceptance_rate=0.9)
    order = OrderFactory(vendor=slow, stuck_minutes=45)
    client = vendor_client(slow)
    healing_request(order=order, requested_by=None)
    response = client.post(f"{VENDOR}/{order.pk}/confirm")
    assert response.status_code == 404  # no longer its order: nothing leaks
    assert json.loads(response.content)["error"]["code"] == "not_found"
