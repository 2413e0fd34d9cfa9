"""orders.health: the shared vendor circuit breaker (invariant 14)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from orders import health
from orders.models import VendorCircuit
from tests.factories import VendorFactory
from tests.healing.conftest import run_in_threads

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _breaker(settings):
    settings.VENDOR_CIRCUIT_FAILURE_THRESHOLD = 3
    settings.VENDOR_CIRCUIT_WINDOW_SECONDS = 300
    settings.VENDOR_CIRCUIT_COOLDOWN_SECONDS = 60
    settings.VENDOR_CIRCUIT_PROBE_SECONDS = 30


def fail(vendor, now, times=1):
    return [
        health.circuit_failure(vendor_id=vendor.pk, error="timeout", now=now) for _ in range(times)
    ]


def test_a_vendor_without_a_row_is_closed_and_costs_nothing(django_assert_num_queries):
    vendor = VendorFactory()
    view = health.circuit_get(vendor_id=vendor.pk)
    assert view.state == "CLOSED" and view.healthy
    with django_assert_num_queries(0):
        assert health.circuit_permit(view=view) == health.ALLOW
        assert health.circuit_success(view=view) is None


def test_threshold_failures_in_the_window_open_the_circuit_once():
    vendor = VendorFactory()
    now = timezone.now()
    assert fail(vendor, now, 2) == [None, None]
    assert fail(vendor, now + timedelta(seconds=10)) == ["OPENED"]
    # Later failures (calls that left before it opened) open nothing again.
    assert fail(vendor, now + timedelta(seconds=11)) == [None]
    row = VendorCircuit.objects.get(pk=vendor.pk)
    assert (row.state, row.failures, row.retry_at) == ("OPEN", 4, now + timedelta(seconds=70))
    view = health.circuit_get(vendor_id=vendor.pk)
    assert health.circuit_blocked(view=view, now=now + timedelta(seconds=30))
    assert health.circuit_permit(view=view, now=now + timedelta(seconds=30)) == health.DENY


def test_failures_outside_the_window_start_a_new_count():
    vendor = VendorFactory()
    now = timezone.now()
    fail(vendor, now, 2)
    assert fail(vendor, now + timedelta(seconds=301)) == [None]
    assert VendorCircuit.objects.get(pk=vendor.pk).failures == 1


def test_a_success_between_failures_resets_the_count():
    vendor = VendorFactory()
    now = timezone.now()
    fail(vendor, now, 2)
    view = health.circuit_get(vendor_id=vendor.pk)
    assert not view.healthy
    assert health.circuit_success(view=view, now=now) is None  # it was not open
    assert fail(vendor, now, 2) == [None, None]
    assert VendorCircuit.objects.get(pk=vendor.pk).state == "CLOSED"


def test_after_the_cooldown_exactly_one_probe_goes_and_its_success_closes():
    vendor = VendorFactory()
    now = timezone.now()
    fail(vendor, now, 3)
    later = now + timedelta(seconds=61)
    view = health.circuit_get(vendor_id=vendor.pk)
    assert health.circuit_permit(view=view, now=later) == health.PROBE
    # Everyone else is refused while the probe is out, even with the old view.
    assert health.circuit_permit(view=view, now=later) == health.DENY
    assert health.circuit_get(vendor_id=vendor.pk).state == "HALF_OPEN"
    assert health.circuit_success(view=view, now=later) == health.CLOSED
    row = VendorCircuit.objects.get(pk=vendor.pk)
    assert (row.state, row.failures, row.closed_at) == ("CLOSED", 0, later)


def test_a_failed_probe_reopens_for_another_cooldown():
    vendor = VendorFactory()
    now = timezone.now()
    fail(vendor, now, 3)
    later = now + timedelta(seconds=61)
    assert health.circuit_permit(view=health.circuit_get(vendor_id=vendor.pk), now=later) == "PROBE"
    assert fail(vendor, later) == ["REOPENED"]
    row = VendorCircuit.objects.get(pk=vendor.pk)
    assert (row.state, row.retry_at) == ("OPEN", later + timedelta(seconds=60))


def test_a_lost_probe_frees_itself_after_its_lease():
    vendor = VendorFactory()
    now = timezone.now()
    fail(vendor, now, 3)
    view = health.circuit_get(vendor_id=vendor.pk)
    assert health.circuit_permit(view=view, now=now + timedelta(seconds=61)) == "PROBE"
    stale = health.circuit_get(vendor_id=vendor.pk)
    assert health.circuit_permit(view=stale, now=now + timedelta(seconds=80)) == "DENY"
    assert health.circuit_permit(view=stale, now=now + timedelta(seconds=92)) == "PROBE"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_failures_on_many_connections_open_it_exactly_once():
    """The state is rows, not process memory: every worker counts into it."""
    vendor = VendorFactory()
    now = timezone.now()
    results = run_in_threads(
        *[
            (lambda: health.circuit_failure(vendor_id=vendor.pk, error="timeout", now=now))
            for _ in range(8)
        ]
    )
    assert results.count("OPENED") == 1
    assert VendorCircuit.objects.get(pk=vendor.pk).failures == 8


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_probes_have_one_winner():
    vendor = VendorFactory()
    now = timezone.now()
    fail(vendor, now, 3)
    view = health.circuit_get(vendor_id=vendor.pk)
    later = now + timedelta(seconds=61)
    results = run_in_threads(
        *[(lambda: health.circuit_permit(view=view, now=later)) for _ in range(6)]
    )
    assert sorted(results) == ["DENY"] * 5 + ["PROBE"]
