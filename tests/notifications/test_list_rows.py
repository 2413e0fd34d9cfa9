"""The notification list's plain rows are NotificationSerializer's output (issue 21 item 7)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from notifications.apis import NotificationSerializer, notification_row
from notifications.models import AdminNotification
from tests.factories import AdminNotificationFactory, HealingActionFactory, OrderFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("api_defaults")]


def test_plain_rows_equal_the_serializer_for_every_kind_of_notification(make_user):
    admin = make_user("ADMIN", "reviewer")
    now = timezone.now()
    order = OrderFactory(status="PENDING", stuck_minutes=45)
    AdminNotificationFactory(details={"nested": {"a": [1, 2]}, "note": "é"})
    AdminNotificationFactory(
        order=order,
        healing_action=HealingActionFactory(order=order),
        notification_type="HEALING_FAILED",
        occurrences=3,
        sent=True,
        delivery_method="email,slack",
    )
    AdminNotificationFactory(
        acknowledged_at=now, acknowledged_by=admin, acknowledgement_comment="seen"
    )
    AdminNotificationFactory(
        acknowledged_at=now - timedelta(minutes=5),
        resolved_at=now,
        resolved_by=admin,
        resolution_note="fixed",
    )
    rows = AdminNotification.objects.select_related("acknowledged_by", "resolved_by")

    assert [notification_row(item) for item in rows] == NotificationSerializer(rows, many=True).data


def test_the_list_answers_the_same_rows_as_before(ops_api, make_user):
    admin = make_user("ADMIN", "reviewer")
    AdminNotificationFactory(resolved_at=None, acknowledged_at=None)
    AdminNotificationFactory(acknowledged_at=timezone.now(), acknowledged_by=admin)

    body = ops_api.get("/api/v1/self-healing/notifications?acknowledged=true").json()

    expected = NotificationSerializer(
        AdminNotification.objects.filter(acknowledged_at__isnull=False), many=True
    ).data
    assert body["count"] == 1 and body["notifications"] == expected
