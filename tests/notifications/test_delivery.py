"""Delivery: every channel against a real local HTTP server, retries per channel."""

from __future__ import annotations

import socket

import pytest
from django.core import mail
from django.db import transaction

from config.retry import backoff_seconds
from notifications.channels import channels_for
from notifications.models import AdminNotification, NotificationDelivery
from notifications.services import notification_deliver_round, notification_raise
from tests.factories import AdminNotificationFactory, OrderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def all_channels(settings, receiver):
    settings.NOTIFICATION_CHANNELS = {
        "LOW": ["dashboard"],
        "MEDIUM": ["dashboard", "email"],
        "HIGH": ["dashboard", "email", "webhook"],
        "CRITICAL": ["dashboard", "email", "webhook", "sms", "whatsapp"],
    }
    settings.NOTIFICATION_EMAIL_TO = ["ops@example.com", "cto@example.com"]
    settings.NOTIFICATION_WEBHOOK_URL = f"{receiver.url}/hook"
    settings.NOTIFICATION_MESSAGING_GATEWAY_URL = f"{receiver.url}/messages"
    settings.NOTIFICATION_MESSAGING_GATEWAY_TOKEN = "gw-token-123"
    settings.NOTIFICATION_SMS_ENABLED = True
    settings.NOTIFICATION_SMS_TO = ["+15550001"]
    settings.NOTIFICATION_WHATSAPP_ENABLED = True
    settings.NOTIFICATION_WHATSAPP_TO = ["+15550002"]
    settings.NOTIFICATION_ADMIN_BASE_URL = "https://ops.example.com"
    settings.NOTIFICATION_DELIVERY_MAX_RETRIES = 2
    return settings


def _raise_committed(capture, **kwargs) -> AdminNotification:
    """Raise inside a transaction and run its on-commit delivery, as in production."""
    with capture(execute=True), transaction.atomic():
        raised = notification_raise(**kwargs)
    return AdminNotification.objects.get(pk=raised.id)


def _deliveries(notification: AdminNotification, round: int = 0) -> dict[str, NotificationDelivery]:
    return {
        d.channel: d
        for d in NotificationDelivery.objects.filter(notification=notification, round=round)
    }


def test_every_channel_sends_its_request(
    all_channels, receiver, django_capture_on_commit_callbacks
):
    notification = _raise_committed(
        django_capture_on_commit_callbacks,
        notification_type="SYSTEM_ALERT",
        severity="CRITICAL",
        title="Blast-radius guard tripped: 2500 stuck orders",
        message="2500 of 4000 open orders are stuck.",
        details={"alert": "guard", "stuck_orders": 2500},
        dedup_key="guard",
    )

    deliveries = _deliveries(notification)
    assert set(deliveries) == {"dashboard", "email", "webhook", "sms", "whatsapp"}
    assert {d.status for d in deliveries.values()} == {"DELIVERED"}
    assert {d.attempts for d in deliveries.values()} == {1}
    assert notification.sent is True and notification.sent_at is not None
    assert notification.delivery_method == "dashboard,email,webhook,sms,whatsapp"
    link = (
        f"https://ops.example.com/admin/notifications/adminnotification/{notification.pk}/change/"
    )

    (email,) = mail.outbox
    assert email.to == ["ops@example.com", "cto@example.com"]
    assert email.subject == "[CRITICAL] Blast-radius guard tripped: 2500 stuck orders"
    assert "2500 of 4000 open orders are stuck." in email.body and link in email.body

    (hook,) = [r for r in receiver.requests if r.path == "/hook"]
    assert hook.headers["content-type"] == "application/json"
    assert hook.body["text"].startswith("[CRITICAL] Blast-radius guard tripped")
    assert link in hook.body["text"]
    assert hook.body["blocks"][0]["type"] == "header"
    assert "2500 of 4000" in hook.body["blocks"][1]["text"]["text"]

    gateway = {r.body["channel"]: r for r in receiver.requests if r.path == "/messages"}
    assert set(gateway) == {"sms", "whatsapp"}
    sms, whatsapp = gateway["sms"], gateway["whatsapp"]
    assert sms.headers["authorization"] == "Bearer gw-token-123"
    assert sms.body["to"] == ["+15550001"]
    assert sms.body["text"].startswith("[CRITICAL] Blast-radius guard tripped")
    assert len(sms.body["text"]) <= 320 and link in sms.body["text"]
    assert sms.body["reference"] == f"notification-{notification.pk}-0"
    assert whatsapp.body["to"] == ["+15550002"]
    assert "2500 of 4000 open orders are stuck." in whatsapp.body["text"]


def test_a_failing_webhook_is_retried_and_recorded_while_email_still_goes_out(
    all_channels, receiver, django_capture_on_commit_callbacks
):
    receiver.statuses = [500] * 10
    notification = _raise_committed(
        django_capture_on_commit_callbacks,
        notification_type="HEALING_FAILED",
        severity="HIGH",
        title="Healing failed: order X",
        message="boom",
        order_id=OrderFactory().pk,
    )

    deliveries = _deliveries(notification)
    assert set(deliveries) == {"dashboard", "email", "webhook"}
    webhook = deliveries["webhook"]
    # First try + NOTIFICATION_DELIVERY_MAX_RETRIES retries, then FAILED.
    assert webhook.attempts == 3 and webhook.status == "FAILED"
    assert "HTTP 500" in webhook.last_error and "gateway exploded" in webhook.last_error
    assert len(receiver.bodies("/hook")) == 3
    # Email went out on the first try and was not sent again by the retries.
    assert deliveries["email"].status == "DELIVERED" and deliveries["email"].attempts == 1
    assert len(mail.outbox) == 1
    assert notification.sent is False  # not every configured channel delivered


def test_a_webhook_that_recovers_on_retry_completes_the_round(
    all_channels, receiver, django_capture_on_commit_callbacks
):
    receiver.statuses = [503]
    notification = _raise_committed(
        django_capture_on_commit_callbacks,
        notification_type="HEALING_FAILED",
        severity="HIGH",
        title="Healing failed",
        message="boom",
        order_id=OrderFactory().pk,
    )
    webhook = _deliveries(notification)["webhook"]
    assert (webhook.attempts, webhook.status) == (2, "DELIVERED")
    assert "HTTP 503" in webhook.last_error
    assert notification.sent is True and len(mail.outbox) == 1


def test_an_unreachable_webhook_records_the_connection_error(
    all_channels, django_capture_on_commit_callbacks
):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    all_channels.NOTIFICATION_WEBHOOK_URL = f"http://127.0.0.1:{closed_port}/hook"
    notification = _raise_committed(
        django_capture_on_commit_callbacks,
        notification_type="HEALING_FAILED",
        severity="HIGH",
        title="Healing failed",
        message="boom",
        order_id=OrderFactory().pk,
    )
    webhook = _deliveries(notification)["webhook"]
    assert webhook.status == "FAILED" and "ConnectionError" in webhook.last_error
    assert _deliveries(notification)["email"].status == "DELIVERED"


def test_channels_follow_the_severity_policy_and_skip_unconfigured_ones(settings):
    settings.NOTIFICATION_CHANNELS = {
        "LOW": ["dashboard"],
        "MEDIUM": ["dashboard", "email"],
        "HIGH": ["dashboard", "email", "webhook"],
        "CRITICAL": ["dashboard", "email", "webhook", "sms", "whatsapp"],
    }
    settings.NOTIFICATION_EMAIL_TO = ["ops@example.com"]
    settings.NOTIFICATION_WEBHOOK_URL = ""
    settings.NOTIFICATION_SMS_ENABLED = False
    settings.NOTIFICATION_WHATSAPP_ENABLED = True
    settings.NOTIFICATION_WHATSAPP_TO = ["+1555"]
    settings.NOTIFICATION_MESSAGING_GATEWAY_URL = ""

    def names(severity: str) -> list[str]:
        return [channel.name for channel in channels_for(severity)]

    assert names("LOW") == ["dashboard"]
    assert names("MEDIUM") == ["dashboard", "email"]
    # No webhook URL, SMS off, WhatsApp without a gateway: left out.
    assert names("HIGH") == ["dashboard", "email"]
    assert names("CRITICAL") == ["dashboard", "email"]
    settings.NOTIFICATION_MESSAGING_GATEWAY_URL = "http://127.0.0.1:9/messages"
    assert names("CRITICAL") == ["dashboard", "email", "whatsapp"]


def test_a_low_notification_stays_on_the_dashboard(
    quiet_channels, django_capture_on_commit_callbacks
):
    notification = _raise_committed(
        django_capture_on_commit_callbacks,
        notification_type="SYSTEM_ALERT",
        severity="LOW",
        title="Vendor V let 3 orders get stuck today",
        message="m",
        dedup_key="vendor_timeouts:1:2026-11-28",
    )
    assert set(_deliveries(notification)) == {"dashboard"}
    assert notification.sent is True and mail.outbox == []


def test_a_notification_resolved_before_delivery_is_not_sent(quiet_channels):
    notification = AdminNotificationFactory(resolved_at="2026-11-28T10:00:00Z")
    result = notification_deliver_round(notification_id=notification.pk)
    assert result.skipped == "resolved"
    assert NotificationDelivery.objects.count() == 0 and mail.outbox == []


def test_a_round_only_resends_the_channels_not_yet_delivered(all_channels, receiver):
    notification = AdminNotificationFactory(severity="HIGH")
    receiver.statuses = [500]
    first = notification_deliver_round(notification_id=notification.pk)
    assert first.delivered == ["dashboard", "email"] and set(first.failed) == {"webhook"}
    second = notification_deliver_round(notification_id=notification.pk, final=True)
    assert second.delivered == ["webhook"] and not second.failed
    assert len(mail.outbox) == 1
    notification.refresh_from_db()
    assert notification.sent is True


@pytest.mark.parametrize("retries", [0, 1, 3, 10, 30])
def test_backoff_grows_exponentially_with_jitter_and_a_cap(settings, retries):
    settings.NOTIFICATION_DELIVERY_BACKOFF_BASE = 5.0
    settings.NOTIFICATION_DELIVERY_BACKOFF_MAX = 300.0
    ceiling = min(300.0, 5.0 * 2**retries)
    for _ in range(20):
        assert (
            ceiling / 2
            <= backoff_seconds(
                retries,
                base=settings.NOTIFICATION_DELIVERY_BACKOFF_BASE,
                cap=settings.NOTIFICATION_DELIVERY_BACKOFF_MAX,
            )
            <= ceiling
        )


def test_on_a_worker_a_failing_channel_is_retried_later_with_backoff(
    all_channels, receiver, monkeypatch
):
    """Outside eager mode the task hands the retry to Celery with a backoff countdown."""
    from celery.exceptions import Retry

    from notifications.tasks import notification_deliver

    all_channels.NOTIFICATION_DELIVERY_BACKOFF_BASE = 5.0
    receiver.statuses = [500]
    notification = AdminNotificationFactory(severity="HIGH")
    scheduled: list[float] = []

    def retry(*, countdown: float):
        scheduled.append(countdown)
        # celery-types spells `when` as numbers.Real, which mypy does not see float as.
        return Retry("retry", when=countdown)  # type: ignore[arg-type]

    monkeypatch.setattr(notification_deliver, "retry", retry)
    notification_deliver.push_request(retries=1, is_eager=False)
    try:
        with pytest.raises(Retry):
            notification_deliver.run(notification.pk, 0)
    finally:
        notification_deliver.pop_request()

    assert len(scheduled) == 1 and 5.0 <= scheduled[0] <= 10.0  # base * 2**1, equal jitter
    webhook = _deliveries(notification)["webhook"]
    assert (webhook.status, webhook.attempts) == ("PENDING", 1)  # not final yet
