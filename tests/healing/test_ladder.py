"""The escalation ladder, end to end through cycles."""

from __future__ import annotations

from decimal import Decimal

import pytest

from healing.cycle import healing_cycle_run
from healing.models import HealingAction
from notifications.models import AdminNotification
from orders.models import CreditEntry
from tests.factories import OrderFactory, VendorFactory
from tests.healing.helpers import age_order, execute, initiate, reload  # noqa: F401

pytestmark = pytest.mark.django_db

# --- The ladder, end to end through cycles -------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_pending_order_without_vendors_is_reassigned_twice_then_cancelled_and_refunded():
    order = OrderFactory(status="PENDING", stuck_minutes=31, total=Decimal("60.00"))

    outcomes = []
    for _ in range(3):
        healing_cycle_run(trigger="CLI")
        outcomes.append(
            HealingAction.objects.filter(order=order)
            .order_by("-id")
            .values_list("recovery_action", "recovery_status")[0]
        )
        age_order(order, 31)

    assert outcomes == [
        ("REASSIGN_VENDOR", "FAILED"),
        ("REASSIGN_VENDOR", "FAILED"),
        ("CANCEL_ORDER", "SUCCESS"),
    ]
    order.refresh_from_db()
    assert order.status == "CANCELLED"
    assert CreditEntry.objects.filter(order=order, kind="REFUND").count() == 1
    failed = AdminNotification.objects.get(order=order, notification_type="HEALING_FAILED")
    assert failed.occurrences == 2


@pytest.mark.django_db(transaction=True)
def test_accepted_order_failing_twice_escalates_once_and_is_left_alone(settings):
    settings.VENDOR_GATEWAY_BACKEND = "simulated"
    settings.VENDOR_GATEWAY_SIM_FAILURE_RATE = 1.0
    settings.HEALING_TASK_MAX_RETRIES = 1
    order = OrderFactory(status="ACCEPTED", stuck_minutes=121)
    VendorFactory.create_batch(3)

    for _ in range(4):
        healing_cycle_run(trigger="CLI")
        age_order(order, 121)

    statuses = list(
        HealingAction.objects.filter(order=order)
        .order_by("id")
        .values_list("recovery_action", "recovery_status")
    )
    assert statuses == [
        ("REASSIGN_VENDOR", "FAILED"),
        ("REASSIGN_VENDOR", "FAILED"),
        ("MANUAL_INTERVENTION", "MANUAL_REQUIRED"),
    ]
    assert (
        AdminNotification.objects.filter(
            order=order, notification_type="MANUAL_INTERVENTION_REQUIRED"
        ).count()
        == 1
    )
    manual = AdminNotification.objects.get(
        order=order, notification_type="MANUAL_INTERVENTION_REQUIRED"
    )
    assert manual.details["attempts"] == 2
    failed = AdminNotification.objects.get(order=order, notification_type="HEALING_FAILED")
    assert (failed.occurrences, failed.details["attempts"]) == (2, 2)
    order.refresh_from_db()
    assert order.status == "ACCEPTED"
