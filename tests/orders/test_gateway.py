from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orders.gateway import (
    DeliveryFailed,
    OutboundMessage,
    RecordOnlyGateway,
    SimulatedGateway,
    WebhookGateway,
    get_gateway,
)


@pytest.fixture
def vendor_server():
    received: list[dict] = []
    status = {"code": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(status["code"])
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/orders", received, status
    server.shutdown()


def message(url: str = "", kind: str = "OFFER") -> OutboundMessage:
    return OutboundMessage(
        order_id=7, order_number="ORD-7", vendor_id=3, kind=kind, webhook_url=url
    )


def test_webhook_posts_the_message_as_json(vendor_server):
    url, received, _ = vendor_server
    delivery = WebhookGateway(timeout=2).send(message(url, "ACCEPT_REQUEST"))
    assert delivery.status == "SENT" and delivery.backend == "webhook"
    assert received == [
        {"order_id": 7, "order_number": "ORD-7", "vendor_id": 3, "message": "ACCEPT_REQUEST"}
    ]


def test_webhook_error_status_is_a_transient_failure_with_its_record(vendor_server):
    url, _, status = vendor_server
    status["code"] = 503
    with pytest.raises(DeliveryFailed) as raised:
        WebhookGateway(timeout=2).send(message(url))
    assert raised.value.delivery.status == "FAILED"
    assert "503" in raised.value.delivery.error


def test_webhook_timeout_is_a_transient_failure():
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts, never answers
    try:
        with pytest.raises(DeliveryFailed, match="Timeout"):
            WebhookGateway(timeout=0.3).send(
                message(f"http://127.0.0.1:{listener.getsockname()[1]}/")
            )
    finally:
        listener.close()


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
