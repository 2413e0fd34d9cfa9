"""The demo's vendor desk: verifies our signed webhooks and answers over HTTP (issue 14)."""

from __future__ import annotations

import random
import time

import pytest
import requests

from demo.vendors import VendorDesk
from orders.gateway import OutboundMessage, WebhookGateway
from orders.models import OrderStatus, Vendor
from tests.factories import OrderFactory, VendorFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _wait(predicate, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def desk(live_server):
    desk = VendorDesk(api_url=live_server.url, rng=random.Random(1), decline_share=0.0)
    desk.start()
    yield desk
    desk.stop()


def test_an_offer_is_verified_then_confirmed_and_accepted_over_http(desk, settings):
    settings.API_THROTTLE_ENABLED = False
    vendor = VendorFactory()
    desk.vendor_connect(vendor=vendor)
    vendor = Vendor.objects.get(pk=vendor.pk)
    order = OrderFactory(vendor=vendor)
    WebhookGateway(timeout=5).send(
        OutboundMessage(
            order_id=order.pk,
            order_number=order.number,
            vendor_id=vendor.pk,
            kind="OFFER",
            webhook_url=vendor.webhook_url,
        )
    )
    assert _wait(lambda: desk.replies_ok == 2), desk.summary()
    order.refresh_from_db()
    assert order.status == OrderStatus.ACCEPTED
    assert desk.summary()["vendor_replies_by_action"] == {"accept": 1, "confirm": 1}
    assert desk.verified == 1


def test_a_forged_webhook_is_refused_and_not_answered(desk):
    vendor = VendorFactory()
    desk.vendor_connect(vendor=vendor)
    response = requests.post(
        f"{desk.url}/v/{vendor.pk}",
        data=b'{"type": "order.offer", "data": {"order_id": 1}}',
        headers={
            "webhook-id": "msg_forged",
            "webhook-timestamp": str(int(time.time())),
            "webhook-signature": "v1,Zm9yZ2Vk",
        },
        timeout=5,
    )
    assert response.status_code == 401
    assert desk.rejected == 1 and desk.verified == 0
    assert sum(desk.replies.values()) == 0
