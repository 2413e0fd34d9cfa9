"""Signatures verified by ``standardwebhooks``, the reference implementation vendors use."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from orders.credentials import vendor_credentials_issue
from orders.models import MessageKind
from orders.webhooks import EVENT_TYPE, webhook_build, webhook_message_id
from tests.factories import OrderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def order_and_secret():
    order = OrderFactory()
    return order, vendor_credentials_issue(vendor=order.vendor).webhook_secret


def build(order, kind=MessageKind.OFFER, now=None):
    return webhook_build(
        order_id=order.pk,
        kind=kind,
        vendor_id=order.vendor_id,
        message_id=webhook_message_id(
            order_id=order.pk, kind=kind, vendor_id=order.vendor_id, healing_id=None
        ),
        now=now,
    )


@pytest.mark.parametrize("kind", list(MessageKind))
def test_every_message_type_verifies(order_and_secret, kind):
    order, secret = order_and_secret
    signed = build(order, kind)
    payload = Webhook(secret).verify(signed.body, signed.headers)
    assert payload["type"] == EVENT_TYPE[kind]
    assert payload["data"]["order_id"] == order.pk
    assert payload["data"]["status"] == order.status
    assert signed.headers["webhook-signature"].startswith("v1,")


def test_a_tampered_body_is_rejected(order_and_secret):
    order, secret = order_and_secret
    signed = build(order)
    tampered = signed.body.replace(str(order.total), "0.01")
    assert tampered != signed.body
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, signed.headers)


def test_a_stale_timestamp_is_rejected(order_and_secret):
    order, secret = order_and_secret
    signed = build(order, now=timezone.now() - timedelta(minutes=10))
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(signed.body, signed.headers)


def test_another_secret_is_rejected(order_and_secret):
    order, _ = order_and_secret
    signed = build(order)
    other = vendor_credentials_issue(vendor=OrderFactory().vendor).webhook_secret
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(signed.body, signed.headers)


def test_rotation_signs_with_both_secrets_for_the_grace_period(order_and_secret, settings):
    settings.VENDOR_SECRET_GRACE_SECONDS = 3600
    order, old = order_and_secret
    new = vendor_credentials_issue(vendor=order.vendor, rotate=True).webhook_secret
    signed = build(order)
    assert len(signed.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(signed.body, signed.headers)
    Webhook(new).verify(signed.body, signed.headers)
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        later = build(order)
        Webhook(new).verify(later.body, later.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(old).verify(later.body, later.headers)
