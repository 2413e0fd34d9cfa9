"""What a notification says (issue 20 items 3 and 7): snapshots taken after
the outcome, attempts counted and worded by who asked for them."""

from __future__ import annotations

import pytest

from healing.execution import healing_request, manual_intervention_resolve
from healing.models import HealingAction
from notifications.models import AdminNotification
from tests.factories import OrderFactory
from tests.healing.conftest import ScriptedGateway
from tests.healing.helpers import execute, initiate

pytestmark = pytest.mark.django_db


def test_a_failure_notification_shows_its_own_healing_as_failed():
    order = OrderFactory(status="PENDING", stuck_minutes=45, vendor=None)
    healing = initiate(order, "RETRY_WORKFLOW" if order.vendor_id else "REASSIGN_VENDOR")

    execute(healing, ScriptedGateway())  # no vendor to contact, or no candidate: FAILED

    note = AdminNotification.objects.get(notification_type="HEALING_FAILED")
    assert note.details["recovery_status"] == "FAILED"
    (own,) = [row for row in note.details["history"] if row["id"] == healing.pk]
    assert own["recovery_status"] == "FAILED"
    assert "IN_PROGRESS" not in note.message and "PENDING" not in note.details["recovery_status"]


def test_a_manual_intervention_notification_shows_the_hold_not_pending():
    order = OrderFactory(status="PROCESSING", stuck_minutes=400)
    healing = initiate(order, "MANUAL_INTERVENTION")

    execute(healing, ScriptedGateway())

    note = AdminNotification.objects.get(notification_type="MANUAL_INTERVENTION_REQUIRED")
    assert note.details["recovery_status"] == "MANUAL_REQUIRED"
    assert note.details["history"][0]["recovery_status"] == "MANUAL_REQUIRED"


def test_operator_heals_are_counted_apart_from_automatic_attempts(admin_user_for_events):
    """Two heals an operator asked for, then an escalation: the message must not
    say "after 2 automatic attempts", nor "stuck for 0 minutes" as if automatic."""
    order = OrderFactory(status="PROCESSING", stuck_minutes=5)
    for _ in range(2):
        healing_request(
            order=order, requested_by=admin_user_for_events, recovery_action="RETRY_WORKFLOW"
        )
        order.refresh_from_db()

    healing_request(
        order=order, requested_by=admin_user_for_events, recovery_action="MANUAL_INTERVENTION"
    )

    note = AdminNotification.objects.get(notification_type="MANUAL_INTERVENTION_REQUIRED")
    assert note.details["operator_attempts"] == 2
    assert note.details["automatic_attempts"] == 0
    assert "0 automatic attempts and 2 operator-requested heals" in note.message
    assert note.message.startswith("An operator asked for manual intervention")
    assert "has been stuck" not in note.message


def test_automatic_attempts_are_worded_as_such():
    order = OrderFactory(status="ACCEPTED", stuck_minutes=500)
    first = initiate(order, "MANUAL_INTERVENTION")
    execute(first, ScriptedGateway())
    manual_intervention_resolve(order_id=order.pk)
    HealingAction.objects.filter(pk=first.pk).update(trigger="BEAT")

    second = HealingAction.objects.create(
        **{
            field: getattr(first, field)
            for field in (
                "order_id",
                "issue_type",
                "issue_detected_at",
                "detected_status",
                "episode_started_at",
                "created_at",
                "updated_at",
            )
        },
        trigger="BEAT",
        attempt_number=2,
        recovery_action="MANUAL_INTERVENTION",
        recovery_status="PENDING",
        claim_token=first.claim_token,
    )
    # One earlier automatic attempt (the ladder says attempt 2).
    execute(second, ScriptedGateway())

    note = AdminNotification.objects.get(notification_type="MANUAL_INTERVENTION_REQUIRED")
    assert "after 1 automatic attempt." in note.message
    assert note.message.startswith(f"Order {order.number} has been stuck in ACCEPTED")


@pytest.fixture
def admin_user_for_events(db):
    from orders.roles import ADMIN, role_user_create

    return role_user_create(username="events-admin", password="pw-123456-x", role=ADMIN)[0]
