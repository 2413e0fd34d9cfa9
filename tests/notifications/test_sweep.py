"""The notifications sweep: re-notify unacknowledged ones, redeliver lost deliveries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from notifications.models import AdminNotification, NotificationDelivery
from notifications.services import notification_raise, notifications_sweep_run
from notifications.tasks import notifications_sweep
from tests.audit import audit_rows_delete
from tests.factories import (
    AdminNotificationFactory,
    NotificationDeliveryFactory,
    OrderFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def sweep(quiet_channels, django_capture_on_commit_callbacks):
    """Run the sweep and the deliveries it schedules after commit."""

    def run(now=None):
        with django_capture_on_commit_callbacks(execute=True):
            return notifications_sweep_run(now=now)

    return run


# --- Re-notify --------------------------------------------------------------------------


def test_renotify_respects_the_interval_and_the_limit(
    sweep, settings, django_capture_on_commit_callbacks
):
    settings.NOTIFICATION_RENOTIFY_INTERVAL_MINUTES = 30
    settings.NOTIFICATION_RENOTIFY_LIMIT = 2
    t0 = timezone.now() - timedelta(hours=6)
    order = OrderFactory(stuck_minutes=600)  # still stuck: no auto-resolution
    with django_capture_on_commit_callbacks(execute=True):
        high = notification_raise(
            notification_type="HEALING_FAILED",
            severity="HIGH",
            title="Healing failed: order",
            message="m",
            order_id=order.pk,
            now=t0,
        )
        medium = notification_raise(
            notification_type="SYSTEM_ALERT",
            severity="MEDIUM",
            title="Healing cycle late",
            message="m",
            dedup_key="cycle_late_test",
            now=t0,
        )
    assert len(mail.outbox) == 2

    def rounds() -> list[int]:
        return sorted(
            set(
                NotificationDelivery.objects.filter(notification_id=high.id).values_list(
                    "round", flat=True
                )
            )
        )

    assert sweep(now=t0 + timedelta(minutes=29)).renotified == 0
    assert sweep(now=t0 + timedelta(minutes=31)).renotified == 1
    assert rounds() == [0, 1]
    assert mail.outbox[-1].subject == "[HIGH] Reminder 1: Healing failed: order"
    assert sweep(now=t0 + timedelta(minutes=45)).renotified == 0  # counted from the reminder
    assert sweep(now=t0 + timedelta(minutes=62)).renotified == 1
    assert sweep(now=t0 + timedelta(minutes=300)).renotified == 0  # the limit
    assert rounds() == [0, 1, 2]
    row = AdminNotification.objects.get(pk=high.id)
    assert row.renotify_count == 2 and row.sent is True
    # MEDIUM is never re-notified: one email for it, three for the HIGH one.
    assert len(mail.outbox) == 4
    assert not NotificationDelivery.objects.filter(notification_id=medium.id, round__gt=0).exists()


def test_an_acknowledged_notification_is_not_renotified(sweep, settings):
    settings.NOTIFICATION_RENOTIFY_INTERVAL_MINUTES = 30
    notification = AdminNotificationFactory(
        severity="CRITICAL",
        created_at=timezone.now() - timedelta(hours=2),
        acknowledged_at=timezone.now() - timedelta(hours=1),
        sent=True,
    )
    assert sweep().renotified == 0
    notification.refresh_from_db()
    assert notification.renotify_count == 0


# --- Redelivery of lost deliveries ------------------------------------------------------


def test_a_notification_whose_delivery_task_was_lost_is_delivered_by_the_sweep(sweep):
    long_ago = timezone.now() - timedelta(hours=1)

    def notification(**kwargs):
        # Stuck since before the notification (still open); MEDIUM: no re-notify.
        return AdminNotificationFactory(
            order=OrderFactory(stuck_minutes=120), severity="MEDIUM", **kwargs
        )

    lost = notification(created_at=long_ago, updated_at=long_ago)
    gave_up = notification(created_at=long_ago, updated_at=long_ago)
    NotificationDeliveryFactory(notification=gave_up, channel="email", status="FAILED", attempts=6)
    fresh = notification()  # its task may still be on its way

    first = sweep()
    second = sweep()

    assert first.redelivered == 1 and second.redelivered == 0
    lost.refresh_from_db()
    assert lost.sent is True and len(mail.outbox) == 1
    assert not NotificationDelivery.objects.filter(notification=fresh).exists()
    gave_up.refresh_from_db()
    assert gave_up.sent is False


def test_the_beat_task_runs_the_sweep(quiet_channels):
    result = notifications_sweep()
    assert set(result) == {"renotified", "redelivered"}


# --- Cost -------------------------------------------------------------------------------


def _sweep_statements(count: int) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    long_ago = timezone.now() - timedelta(hours=2)
    for _ in range(count):
        # Due for a reminder, and its order still stuck: nothing else to do.
        AdminNotificationFactory(
            order=OrderFactory(stuck_minutes=600),
            severity="HIGH",
            created_at=long_ago,
            updated_at=long_ago,
            sent=True,
        )
    with CaptureQueriesContext(connection) as queries:
        result = notifications_sweep_run()
    assert result.renotified == count
    audit_rows_delete(AdminNotification.objects.all())
    return len(queries.captured_queries)


def test_the_sweeps_statement_count_does_not_grow_with_the_backlog(quiet_channels):
    assert _sweep_statements(3) == _sweep_statements(40)
