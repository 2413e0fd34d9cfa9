"""/api/v1/self-healing/vendors and /silences (issue 18): ADMIN writes, OPERATIONS reads."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from healing.models import HealingAction, Silence, SilenceEvent
from orders import health
from tests.api.helpers import assert_error
from tests.factories import OrderFactory, VendorFactory

pytestmark = pytest.mark.django_db

BASE = "/api/v1/self-healing"


@pytest.fixture(autouse=True)
def _api(api_defaults):
    return None


def body(**kwargs):
    return {
        "vendorId": kwargs.pop("vendor"),
        "endsAt": (timezone.now() + timedelta(hours=2)).isoformat(),
        "comment": "database migration at the vendor",
        **kwargs,
    }


def test_vendors_lists_health_circuit_orders_calendar_and_silences(ops_api, rules):
    down = VendorFactory(name="A Down")
    up = VendorFactory(
        name="B Up", time_zone="Europe/Berlin", working_hours={"0": [["08:00", "18:00"]]}
    )
    OrderFactory(status="CONFIRMED", vendor=down, stuck_minutes=61)
    OrderFactory(status="CONFIRMED", vendor=up, stuck_minutes=5)
    for _ in range(5):
        health.circuit_failure(vendor_id=down.pk, error="HTTP 503")
    Silence.objects.create(
        vendor=down,
        starts_at=timezone.now() - timedelta(minutes=1),
        ends_at=timezone.now() + timedelta(hours=1),
        comment="maintenance",
        created_at=timezone.now(),
        updated_at=timezone.now(),
    )

    response = ops_api.get(f"{BASE}/vendors")

    assert response.status_code == 200, response.content
    rows = {row["name"]: row for row in response.json()["vendors"]}
    assert rows["A Down"]["health"] == "down"
    assert rows["A Down"]["circuit_state"] == "OPEN"
    assert rows["A Down"]["circuit"]["failures"] == 5
    assert rows["A Down"]["circuit"]["last_error"] == "HTTP 503"
    assert rows["A Down"]["stuck_orders"] == 1 and rows["A Down"]["open_orders"] == 1
    assert rows["A Down"]["calendar"]["always_open"] is True
    assert [s["comment"] for s in rows["A Down"]["active_silences"]] == ["maintenance"]
    assert rows["B Up"]["health"] == "healthy"
    assert rows["B Up"]["circuit_state"] == "CLOSED"
    assert rows["B Up"]["stuck_orders"] == 0
    assert rows["B Up"]["calendar"]["time_zone"] == "Europe/Berlin"
    assert rows["B Up"]["calendar"]["always_open"] is False


@pytest.mark.parametrize("role", ["VIEWER", "anonymous"])
def test_vendors_is_for_operations_and_admin(client_for, role):
    response = client_for(role).get(f"{BASE}/vendors")
    assert response.status_code == (401 if role == "anonymous" else 403)


def test_admin_creates_extends_and_expires_a_silence_operations_reads(admin_api, ops_api):
    vendor = VendorFactory()

    created = admin_api.post(f"{BASE}/silences", body(vendor=vendor.pk), format="json")
    assert created.status_code == 201, created.content
    silence = created.json()["silence"]
    assert silence["vendor_id"] == vendor.pk and silence["active"] is True
    assert silence["owner"] == "admin-user"

    listed = ops_api.get(f"{BASE}/silences?active=true")
    assert [s["id"] for s in listed.json()["silences"]] == [silence["id"]]
    assert ops_api.get(f"{BASE}/silences/{silence['id']}").json()["silence"]["id"] == silence["id"]

    later = (timezone.now() + timedelta(hours=5)).isoformat()
    extended = admin_api.patch(f"{BASE}/silences/{silence['id']}", {"endsAt": later}, format="json")
    assert extended.status_code == 200, extended.content

    expired = admin_api.post(f"{BASE}/silences/{silence['id']}/expire", {}, format="json")
    assert expired.status_code == 200 and expired.json()["silence"]["active"] is False
    assert list(
        SilenceEvent.objects.filter(silence_id=silence["id"]).values_list("action", flat=True)
    ) == ["CREATED", "EXTENDED", "EXPIRED"]
    assert ops_api.get(f"{BASE}/silences?active=true").json()["silences"] == []


def test_operations_may_not_write_silences(ops_api):
    vendor = VendorFactory()
    response = ops_api.post(f"{BASE}/silences", body(vendor=vendor.pk), format="json")
    assert response.status_code == 403
    assert not Silence.objects.exists()


def test_silence_inputs_are_validated(admin_api):
    vendor = VendorFactory()
    assert_error(
        admin_api.post(f"{BASE}/silences", body(vendor=vendor.pk, vendor_id=1), format="json"),
        400,
        "unknown_field",
        "vendor_id",
    )
    no_matcher = body(vendor=None)
    response = admin_api.post(f"{BASE}/silences", no_matcher, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "silence_invalid"
    assert admin_api.get(f"{BASE}/silences/abc").status_code == 400
    assert admin_api.get(f"{BASE}/silences/999").status_code == 404
    assert not HealingAction.objects.exists()
