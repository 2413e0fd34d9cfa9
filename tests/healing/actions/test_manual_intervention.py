"""MANUAL_INTERVENTION: notify with full context and hold the order."""

from __future__ import annotations

import pytest

from healing.cycle import healing_cycle_run
from notifications.models import AdminNotification
from tests.factories import OrderFactory
from tests.healing.helpers import age_order, execute, initiate, reload  # noqa: F401

pytestmark = pytest.mark.django_db

# --- MANUAL_INTERVENTION -------------------------------------------------------------


def test_manual_intervention_raises_a_full_context_notification_and_holds_the_order(gateway):
    order = OrderFactory(status="PROCESSING", stuck_minutes=400)

    outcome = execute(initiate(order, "MANUAL_INTERVENTION"), gateway)

    assert outcome.status == "MANUAL_REQUIRED"
    note = AdminNotification.objects.get()
    assert (note.notification_type, note.severity) == ("MANUAL_INTERVENTION_REQUIRED", "HIGH")
    assert note.details["current_status"] == "PROCESSING"
    assert note.details["stuck_minutes"] >= 400
    assert note.details["recommended_action"]
    assert note.details["history"][0]["recovery_action"] == "MANUAL_INTERVENTION"
    order.refresh_from_db()
    assert order.status == "PROCESSING"
    assert healing_cycle_run(trigger="CLI").detected == 0
