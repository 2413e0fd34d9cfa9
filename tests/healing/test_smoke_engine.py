import pytest

from healing.models import HealingAction
from healing.services import healing_cycle_run
from tests.factories import OrderFactory, VendorFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_cycle_heals_each_stuck_status():
    VendorFactory(acceptance_rate=0.5)
    pending = OrderFactory(status="PENDING", stuck_minutes=45)
    confirmed = OrderFactory(status="CONFIRMED", stuck_minutes=61)
    accepted = OrderFactory(status="ACCEPTED", stuck_minutes=121)
    processing = OrderFactory(status="PROCESSING", stuck_minutes=200)
    fresh = OrderFactory(status="PENDING", stuck_minutes=5)

    result = healing_cycle_run(trigger="CLI")

    assert result.ran and result.detected == 4
    rows = {h.order_id: h for h in HealingAction.objects.all()}
    assert fresh.pk not in rows
    assert {rows[o.pk].recovery_action for o in (pending, accepted)} == {"REASSIGN_VENDOR"}
    assert {rows[o.pk].recovery_action for o in (confirmed, processing)} == {"RETRY_WORKFLOW"}
    assert {h.recovery_status for h in rows.values()} == {"SUCCESS"}, [
        (h.recovery_action, h.recovery_status, h.error_message) for h in rows.values()
    ]
