from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks.webhooks import Webhook

from orders.credentials import vendor_credentials_issue
from orders.gateway import (
    DeliveryFailed,
    DeliveryRejected,
    OutboundMessage,
    RecordOnlyGateway,
    SimulatedGateway,
    WebhookGateway,
    get_gateway,
)
from tests.factories import OrderFactory


@pytest.fixture
def vendor_server():
    received: list[tuple[dict, bytes]] = []
    status = {"code": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(status["code"])
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/orders", received, status
    server.shutdown()


@pytest.fixture
def signed_order(db):
    order = OrderFactory()
    issued = vendor_credentials_issue(vendor=order.vendor)
    return order, issued.webhook_secret


def message(order=None, url: str = "", kind: str = "OFFER", healing_id=None) -> OutboundMessage:
    return OutboundMessage(
        order_id=order.pk if order else 7,
        order_number=order.number if order else "ORD-7",
        vendor_id=order.vendor_id if order else 3,
        kind=kind,
        webhook_url=url,
        healing_id=healing_id,
    )


def test_webhook_posts_a_signed_standard_webhook(vendor_server, signed_order):
    url, received, _ = vendor_server
    order, secret = signed_order
    delivery = WebhookGateway(timeout=2).send(message(order, url, "ACCEPT_REQUEST"))
    assert delivery.status == "SENT" and delivery.backend == "webhook"
    headers, body = received[0]
    payload = Webhook(secret).verify(body, headers)
    assert payload["type"] == "order.accept_request"
    assert payload["data"]["order_id"] == order.pk
    assert payload["data"]["order_number"] == order.number
    assert payload["data"]["amount"] == str(order.total)
    assert delivery.as_row().message_id == headers["webhook-id"]


def test_webhook_error_status_is_a_transient_failure_with_its_record(vendor_server, signed_order):
    url, _, status = vendor_server
    status["code"] = 503
    with pytest.raises(DeliveryFailed) as raised:
        WebhookGateway(timeout=2).send(message(signed_order[0], url))
    assert raised.value.delivery.status == "FAILED"
    assert "503" in raised.value.delivery.error


@pytest.mark.parametrize("code", [400, 404, 410, 422])
def test_webhook_4xx_is_a_permanent_failure(vendor_server, signed_order, code):
    url, received, status = vendor_server
    status["code"] = code
    with pytest.raises(DeliveryRejected) as raised:
        WebhookGateway(timeout=2).send(message(signed_order[0], url))
    assert not isinstance(raised.value, DeliveryFailed)  # not retried
    assert raised.value.delivery.status == "FAILED"
    assert str(code) in raised.value.delivery.error
    assert len(received) == 1


def test_webhook_to_a_vendor_without_a_secret_is_never_sent_unsigned(vendor_server, db):
    url, received, _ = vendor_server
    with pytest.raises(DeliveryRejected, match="signing secret"):
        WebhookGateway(timeout=2).send(message(OrderFactory(), url))
    assert received == []


def test_webhook_timeout_is_a_transient_failure(signed_order):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts, never answers
    try:
        with pytest.raises(DeliveryFailed, match="Timeout"):
            WebhookGateway(timeout=0.3).send(
                message(signed_order[0], f"http://127.0.0.1:{listener.getsockname()[1]}/")
            )
    finally:
        listener.close()


def test_message_id_is_the_same_for_every_retry_of_one_message(vendor_server, signed_order):
    url, received, status = vendor_server
    order, _ = signed_order
    status["code"] = 503
    for _ in range(2):
        with pytest.raises(DeliveryFailed):
            WebhookGateway(timeout=2).send(message(order, url, healing_id=41))
    status["code"] = 200
    WebhookGateway(timeout=2).send(message(order, url, healing_id=41))
    WebhookGateway(timeout=2).send(message(order, url, kind="WITHDRAW", healing_id=41))
    ids = [headers["webhook-id"] for headers, _ in received]
    assert ids[0] == ids[1] == ids[2] != ids[3]


def test_simulated_gateway_fails_at_its_configured_rate(settings):
    settings.VENDOR_GATEWAY_SIM_FAILURE_RATE = 1.0
    with pytest.raises(DeliveryFailed):
        SimulatedGateway().send(message())
    settings.VENDOR_GATEWAY_SIM_FAILURE_RATE = 0.0
    assert SimulatedGateway().send(message()).status == "SENT"


def test_backend_is_chosen_by_setting(settings):
    settings.VENDOR_GATEWAY_BACKEND = "record"
    assert isinstance(get_gateway(), RecordOnlyGateway)
    settings.VENDOR_GATEWAY_BACKEND = "carrier-pigeon"
    with pytest.raises(ValueError, match="record, webhook or simulated"):
        get_gateway()


def test_body_is_the_documented_envelope(vendor_server, signed_order):
    url, received, _ = vendor_server
    WebhookGateway(timeout=2).send(message(signed_order[0], url, "CONFIRM_REQUEST"))
    body = json.loads(received[0][1])
    assert set(body) == {"type", "timestamp", "data"}
    assert set(body["data"]) >= {"order_id", "order_number", "status", "amount", "act_by"}
