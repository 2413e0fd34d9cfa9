"""Prometheus series per vendor circuit state (issue 18): healing.reports.prometheus_vendors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from healing.reports import prometheus_vendors
from healing.reports.prometheus import metrics_render
from orders.models import VendorCircuit
from tests.factories import VendorFactory
from tests.healing.reports.test_prometheus import samples

pytestmark = pytest.mark.django_db


def _circuit(state: str, *, opened_minutes_ago: float | None) -> VendorCircuit:
    now = timezone.now()
    opened = None if opened_minutes_ago is None else now - timedelta(minutes=opened_minutes_ago)
    return VendorCircuit.objects.create(
        vendor=VendorFactory(), state=state, failures=5, opened_at=opened, updated_at=now
    )


def _states(out: dict) -> dict[str, float]:
    return {
        dict(labels)["state"]: value
        for (name, labels), value in out.items()
        if name == "healing_vendor_circuits"
    }


def _per_vendor(out: dict) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["vendor_id"], dict(labels)["state"]): value
        for (name, labels), value in out.items()
        if name == "healing_vendor_circuit_opened_timestamp_seconds"
    }


def test_vendors_are_counted_per_circuit_state_and_listed_while_not_closed():
    VendorFactory()  # no circuit row: closed
    closed = _circuit("CLOSED", opened_minutes_ago=None)
    open_ = _circuit("OPEN", opened_minutes_ago=10)
    half_open = _circuit("HALF_OPEN", opened_minutes_ago=30)

    out = samples(metrics_render().decode())

    assert _states(out) == {"CLOSED": 2, "OPEN": 1, "HALF_OPEN": 1}
    listed = _per_vendor(out)
    assert set(listed) == {(str(open_.vendor_id), "OPEN"), (str(half_open.vendor_id), "HALF_OPEN")}
    assert listed[(str(open_.vendor_id), "OPEN")] == pytest.approx(open_.opened_at.timestamp())
    assert str(closed.vendor_id) not in {vendor for vendor, _ in listed}
    assert out[("healing_vendor_circuit_series_dropped", ())] == 0


def test_per_vendor_series_are_capped_longest_open_first(monkeypatch):
    monkeypatch.setattr(prometheus_vendors, "PER_VENDOR_MAX_SERIES", 2)
    oldest = _circuit("OPEN", opened_minutes_ago=90)
    second = _circuit("HALF_OPEN", opened_minutes_ago=60)
    _circuit("OPEN", opened_minutes_ago=5)

    out = samples(metrics_render().decode())

    assert set(_per_vendor(out)) == {
        (str(oldest.vendor_id), "OPEN"),
        (str(second.vendor_id), "HALF_OPEN"),
    }
    assert out[("healing_vendor_circuit_series_dropped", ())] == 1
    assert _states(out) == {"CLOSED": 0, "OPEN": 2, "HALF_OPEN": 1}  # the totals stay whole


def test_no_vendor_means_three_zero_series():
    out = samples(metrics_render().decode())

    assert _states(out) == {"CLOSED": 0, "OPEN": 0, "HALF_OPEN": 0}
    assert _per_vendor(out) == {}
