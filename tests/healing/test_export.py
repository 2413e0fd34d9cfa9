"""CSV exports of healings and notifications: streamed, filtered like the lists."""

from __future__ import annotations

import csv
import io

import pytest

from tests.factories import AdminNotificationFactory, HealingActionFactory, OrderFactory

pytestmark = pytest.mark.usefixtures("api_defaults")


def _rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.content
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.django_db
def test_healings_export_honours_the_list_filters(ops_api):
    order = OrderFactory()
    failed = HealingActionFactory(
        order=order, recovery_status="FAILED", error_message="=HYPERLINK()"
    )
    HealingActionFactory(order=OrderFactory(), recovery_status="SUCCESS")

    rows = _rows(ops_api.get("/api/v1/self-healing/healing-actions/export?status=FAILED"))

    assert [row["id"] for row in rows] == [str(failed.pk)]
    assert rows[0]["order_number"] == order.number
    assert rows[0]["recovery_status"] == "FAILED"
    assert rows[0]["error_message"] == "'=HYPERLINK()"  # never a formula in a spreadsheet
    everything = _rows(ops_api.get("/api/v1/self-healing/healing-actions/export"))
    assert len(everything) == 2


@pytest.mark.django_db
def test_notifications_export_defaults_to_pending_like_the_list(ops_api):
    from django.utils import timezone

    pending = AdminNotificationFactory(severity="HIGH")
    AdminNotificationFactory(severity="HIGH", resolved_at=timezone.now())

    rows = _rows(ops_api.get("/api/v1/self-healing/notifications/export"))
    assert [row["id"] for row in rows] == [str(pending.pk)]
    resolved = _rows(ops_api.get("/api/v1/self-healing/notifications/export?resolved=true"))
    assert len(resolved) == 1 and resolved[0]["id"] != str(pending.pk)


@pytest.mark.django_db
def test_a_bad_filter_is_a_400_and_viewers_may_not_export(ops_api, client_for):
    bad = ops_api.get("/api/v1/self-healing/healing-actions/export?status=NOPE")
    assert bad.status_code == 400
    for url in ("healing-actions/export", "notifications/export"):
        assert client_for("VIEWER").get(f"/api/v1/self-healing/{url}").status_code == 403
