"""Each notification endpoint's behaviour: list (pending by default), acknowledge, resolve."""

from __future__ import annotations

import pytest
from django.utils import timezone

from tests.factories import AdminNotificationFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("api_defaults")]

BASE = "/api/v1/self-healing"


# --- notifications --------------------------------------------------------------


def test_notifications_default_to_pending(ops_api):
    pending = AdminNotificationFactory(severity="HIGH")
    AdminNotificationFactory(acknowledged_at=timezone.now())

    response = ops_api.get(f"{BASE}/notifications")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"success", "count", "next", "previous", "notifications"}
    assert body["count"] == 1
    row = body["notifications"][0]
    assert row["id"] == pending.pk
    assert (row["acknowledged"], row["resolved"], row["severity"]) == (False, False, "HIGH")


def test_notifications_filters(ops_api):
    critical = AdminNotificationFactory(severity="CRITICAL", notification_type="SYSTEM_ALERT")
    acked = AdminNotificationFactory(acknowledged_at=timezone.now())
    AdminNotificationFactory(severity="HIGH")

    def ids(query: str) -> set[int]:
        body = ops_api.get(f"{BASE}/notifications?{query}").json()
        return {row["id"] for row in body["notifications"]}

    assert ids("severity=CRITICAL") == {critical.pk}
    assert ids("type=SYSTEM_ALERT") == {critical.pk}
    assert ids("acknowledged=true") == {acked.pk}


def test_acknowledge_records_who_and_the_comment(admin_api):
    notification = AdminNotificationFactory()

    response = admin_api.post(
        f"{BASE}/notifications/{notification.pk}/acknowledge", {"comment": "on it"}
    )

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"success", "notification"}
    row = body["notification"]
    assert row["acknowledged"] is True and row["resolved"] is False
    assert row["acknowledged_by"] == "admin-user"
    assert row["acknowledgement_comment"] == "on it"
    notification.refresh_from_db()
    assert notification.acknowledged_at is not None


def test_acknowledge_without_a_body(admin_api):
    notification = AdminNotificationFactory()

    response = admin_api.post(f"{BASE}/notifications/{notification.pk}/acknowledge")

    assert response.status_code == 200
    assert response.json()["notification"]["acknowledgement_comment"] == ""


def test_resolve_closes_the_notification(admin_api):
    notification = AdminNotificationFactory()

    response = admin_api.post(
        f"{BASE}/notifications/{notification.pk}/resolve", {"note": "vendor called"}
    )

    assert response.status_code == 200
    row = response.json()["notification"]
    assert row["resolved"] is True and row["resolved_by"] == "admin-user"
    assert row["resolution_note"] == "vendor called"
