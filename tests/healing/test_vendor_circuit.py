"""A vendor whose gateway fails: its circuit opens, nobody calls it, one
notification; the probe closes it after recovery (issue 18, invariant 14)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

import notifications.tasks  # noqa: F401  (registers the delivery task sent on commit)
from healing.cycle import healing_cycle_run
from healing.events import vendor_circuit_key
from healing.models import HealingAction
from notifications.models import AdminNotification
from notifications.selectors import notifications_list
from orders.models import Order, VendorAssignment, VendorCircuit, VendorMessage
from tests.factories import OrderFactory, VendorFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def simulated(settings):
    settings.VENDOR_GATEWAY_BACKEND = "simulated"
    settings.VENDOR_GATEWAY_SIM_LATENCY_MS = 0
    settings.VENDOR_GATEWAY_SIM_FAILURE_RATE = 0
    settings.VENDOR_CIRCUIT_FAILURE_THRESHOLD = 3
    settings.VENDOR_CIRCUIT_COOLDOWN_SECONDS = 60
    settings.HEALING_TASK_MAX_RETRIES = 5
    return settings


def cycle(django_capture_on_commit_callbacks):
    """One cycle with its heal tasks run in-process (eager), retries included."""
    with django_capture_on_commit_callbacks(execute=True):
        return healing_cycle_run(trigger="CLI")


def test_one_failing_vendor_opens_its_circuit_and_others_heal(
    simulated, django_capture_on_commit_callbacks
):
    bad = VendorFactory(name="Down Ltd", acceptance_rate=0.99, capacity=1000)
    good = VendorFactory(name="Up Ltd", acceptance_rate=0.9, capacity=1000)
    holder = VendorFactory(name="Slow Ltd", acceptance_rate=0.5, capacity=1000)
    simulated.VENDOR_GATEWAY_SIM_FAILING_VENDORS = [bad.pk]
    # PENDING orders to reassign (bad ranks first), CONFIRMED ones to retry.
    pending = [OrderFactory(status="PENDING", vendor=holder, stuck_minutes=31) for _ in range(4)]
    bad_confirmed = [
        OrderFactory(status="CONFIRMED", vendor=bad, stuck_minutes=61) for _ in range(3)
    ]
    good_confirmed = [
        OrderFactory(status="CONFIRMED", vendor=good, stuck_minutes=61) for _ in range(3)
    ]

    cycle(django_capture_on_commit_callbacks)

    circuit = VendorCircuit.objects.get(pk=bad.pk)
    assert circuit.state == "OPEN" and circuit.failures == 3
    # Exactly three calls ever reached the bad vendor: the ones that opened it.
    assert VendorMessage.objects.filter(vendor=bad, status="FAILED").count() == 3
    assert not VendorMessage.objects.filter(vendor=bad, status="SENT").exists()
    # No order was reassigned to it; the reassignments went to the next best.
    for order in pending:
        order.refresh_from_db()
        assert (order.status, order.vendor_id) == ("PENDING", good.pk)
    assert not VendorAssignment.objects.filter(vendor=bad).exclude(order__in=bad_confirmed).exists()
    # Its own orders wait: SKIPPED, reason vendor_circuit_open, not attempts.
    skipped = HealingAction.objects.filter(order__in=bad_confirmed)
    assert {(h.recovery_status, h.skip_reason) for h in skipped} == {
        ("SKIPPED", "VENDOR_CIRCUIT_OPEN")
    }
    # Other vendors' orders healed normally.
    assert set(
        HealingAction.objects.filter(order__in=good_confirmed).values_list(
            "recovery_status", flat=True
        )
    ) == {"SUCCESS"}
    # One MEDIUM notification for the vendor, nothing per order.
    pending_notes = list(notifications_list())
    assert [(n.severity, n.dedup_key) for n in pending_notes] == [
        ("MEDIUM", vendor_circuit_key(bad.pk))
    ]

    # The vendor recovers; after the cool-down the probe closes the circuit.
    simulated.VENDOR_GATEWAY_SIM_FAILING_VENDORS = []
    with time_machine.travel(timezone.now() + timedelta(minutes=2), tick=True):
        cycle(django_capture_on_commit_callbacks)

    circuit.refresh_from_db()
    assert (circuit.state, circuit.failures) == ("CLOSED", 0)
    note = AdminNotification.objects.get(dedup_key=vendor_circuit_key(bad.pk))
    assert note.resolved_at is not None
    for order in bad_confirmed:
        latest = HealingAction.objects.filter(order=order).order_by("-id").first()
        assert latest.recovery_status == "SUCCESS"
        # The skipped healing was not an attempt.
        assert latest.attempt_number == 1
    assert AdminNotification.objects.count() == 1


def test_two_hundred_failing_orders_of_one_vendor_page_once(
    simulated, django_capture_on_commit_callbacks
):
    bad = VendorFactory(name="Down Ltd", capacity=1000)
    simulated.VENDOR_GATEWAY_SIM_FAILING_VENDORS = [bad.pk]
    simulated.VENDOR_CIRCUIT_COOLDOWN_SECONDS = 3600
    retried = [OrderFactory(status="CONFIRMED", vendor=bad, stuck_minutes=61) for _ in range(150)]
    # Stuck half an hour later, while the circuit is open; with no other
    # vendor their reassignments fail for good.
    stranded = [OrderFactory(status="ACCEPTED", vendor=bad, stuck_minutes=100) for _ in range(50)]

    cycle(django_capture_on_commit_callbacks)
    with time_machine.travel(timezone.now() + timedelta(minutes=30), tick=True):
        cycle(django_capture_on_commit_callbacks)

    assert HealingAction.objects.filter(order__in=stranded, recovery_status="FAILED").count() == 50
    assert HealingAction.objects.filter(order__in=retried, recovery_status="SKIPPED").count() >= 149
    open_notes = list(notifications_list())
    assert len(open_notes) == 1
    note = open_notes[0]
    assert note.dedup_key == vendor_circuit_key(bad.pk)
    # The folded failures: one notification carrying the count and the orders.
    assert note.details["failed_orders"] == 50
    assert {entry["order_id"] for entry in note.details["orders"]} == {o.pk for o in stranded}
    assert Order.objects.filter(pk__in=[o.pk for o in stranded], status="ACCEPTED").count() == 50
