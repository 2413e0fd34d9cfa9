"""REASSIGN_VENDOR: offer, reassign, withdraw when the order moved on."""

from __future__ import annotations

import pytest

from healing.errors import HealingTransientError
from healing.execution import healing_execute
from healing.models import HealingAction
from notifications.models import AdminNotification
from orders.models import OrderStatusChange, VendorMessage
from tests.factories import OrderFactory, VendorFactory
from tests.healing.conftest import ScriptedGateway
from tests.healing.helpers import age_order, execute, initiate, reload  # noqa: F401

pytestmark = pytest.mark.django_db

# --- REASSIGN_VENDOR ------------------------------------------------------------


def test_reassign_moves_the_order_to_a_new_vendor_and_records_everything(gateway):
    order = OrderFactory(status="ACCEPTED", stuck_minutes=130)
    old_vendor = order.vendor
    new_vendor = VendorFactory(acceptance_rate=0.5)

    outcome = execute(initiate(order), gateway)

    assert outcome.status == "SUCCESS"
    order.refresh_from_db()
    assert (order.status, order.vendor_id) == ("PENDING", new_vendor.pk)
    healing = HealingAction.objects.get(order=order)
    assert healing.recovery_status == "SUCCESS"
    assert (healing.previous_vendor_id, healing.new_vendor_id) == (old_vendor.pk, new_vendor.pk)
    assert healing.resulting_status == "PENDING"
    assert healing.completed_at is not None and healing.recovery_duration_seconds >= 0
    change = OrderStatusChange.objects.filter(order=order).last()
    assert (change.from_status, change.to_status, change.actor_type) == (
        "ACCEPTED",
        "PENDING",
        "HEALING",
    )
    assert [m.kind for m in gateway.sent] == ["OFFER"]
    assert gateway.sent[0].vendor_id == new_vendor.pk
    assert VendorMessage.objects.filter(order=order, kind="OFFER", vendor=new_vendor).count() == 1
    # A successful healing raises no notification (the seed: only on failure).
    assert not AdminNotification.objects.exists()


def test_reassign_with_no_alternative_vendor_fails_with_a_notification(gateway):
    order = OrderFactory(status="PENDING", stuck_minutes=31)

    outcome = execute(initiate(order), gateway)

    assert outcome.status == "FAILED"
    healing = HealingAction.objects.get(order=order)
    assert (healing.recovery_status, healing.error_message) == (
        "FAILED",
        "no alternative vendor available",
    )
    assert healing.admin_notified
    note = AdminNotification.objects.get()
    assert (note.notification_type, note.severity, note.order_id) == (
        "HEALING_FAILED",
        "HIGH",
        order.pk,
    )
    assert note.details["error_message"] == "no alternative vendor available"
    assert note.details["recovery_action"] == "REASSIGN_VENDOR"
    assert gateway.sent == []
    order.refresh_from_db()
    assert order.status == "PENDING"


def test_reassign_gateway_error_is_transient_records_the_message_and_changes_nothing():
    order = OrderFactory(status="PENDING", stuck_minutes=31)
    VendorFactory()
    healing = initiate(order)

    with pytest.raises(HealingTransientError) as raised:
        execute(healing, ScriptedGateway(fail=1))

    assert reload(healing).recovery_status == "IN_PROGRESS"
    assert reload(healing).claim_token == raised.value.token
    assert VendorMessage.objects.filter(order=order, status="FAILED").count() == 1
    order.refresh_from_db()
    assert order.vendor_id == healing.previous_vendor_id
    # The retry presents the new token and succeeds.
    outcome = healing_execute(
        healing_id=healing.pk, token=raised.value.token, retries=1, gateway=ScriptedGateway()
    )
    assert outcome.status == "SUCCESS"
    assert reload(healing).retry_count == 1


def test_a_vendor_refusing_the_offer_fails_the_healing_and_keeps_the_message_row():
    """A 4xx from the vendor is permanent (no retry), and still audited."""
    from orders.gateway import Delivery, DeliveryRejected

    class Refusing:
        name = "scripted"

        def send(self, message):
            raise DeliveryRejected(
                Delivery(message=message, backend=self.name, status="FAILED", error="HTTP 410")
            )

    order = OrderFactory(status="PENDING", stuck_minutes=45)
    VendorFactory()

    outcome = execute(initiate(order, "REASSIGN_VENDOR"), Refusing())

    assert outcome.status == "FAILED"
    (row,) = VendorMessage.objects.filter(order=order, kind="OFFER")
    assert (row.status, row.error) == ("FAILED", "HTTP 410")
    assert (
        AdminNotification.objects.filter(order=order, notification_type="HEALING_FAILED").count()
        == 1
    )
