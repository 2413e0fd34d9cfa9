"""The notification list's "Export selected notifications as CSV" admin action (issue 19)."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.admin import helpers

from tests.factories import AdminNotificationFactory, OrderFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/notifications/adminnotification/"


def _export(client, *ids: int):
    return client.post(
        CHANGELIST, {"action": "export_csv", helpers.ACTION_CHECKBOX_NAME: [str(i) for i in ids]}
    )


@pytest.mark.parametrize("role", ["ADMIN", "OPERATIONS"])
def test_export_streams_the_selection_as_csv(client, make_user, role):
    order = OrderFactory()
    chosen = AdminNotificationFactory(order=order, severity="HIGH", title="=cmd|' /C calc'!A0")
    other = AdminNotificationFactory(severity="LOW", title="not chosen", order=None, dedup_key="x")
    client.force_login(make_user(role))

    response = _export(client, chosen.pk)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="notifications.csv"'
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["id"] for row in rows] == [str(chosen.pk)]
    assert str(other.pk) not in {row["id"] for row in rows}
    row = rows[0]
    assert (row["order_number"], row["severity"]) == (order.number, "HIGH")
    # A formula is not run by the spreadsheet that opens the file.
    assert row["title"] == "'=cmd|' /C calc'!A0"


def test_the_action_is_offered_to_operations_and_admin_only(client, make_user):
    AdminNotificationFactory()
    client.force_login(make_user("OPERATIONS"))
    page = client.get(CHANGELIST).content.decode()
    assert 'value="export_csv"' in page
    client.force_login(make_user("VIEWER"))
    refused = _export(client, AdminNotificationFactory().pk)
    assert refused.status_code == 302 and "/admin/login/" in refused["Location"]
