"""RETRY_WORKFLOW: re-send the step, restart the clock."""

from __future__ import annotations

import pytest

from healing.errors import HealingTransientError
from healing.models import HealingAction
from orders.models import OrderStatusChange
from tests.factories import OrderFactory
from tests.healing.conftest import ScriptedGateway
from tests.healing.helpers import age_order, execute, initiate, reload  # noqa: F401

pytestmark = pytest.mark.django_db

# --- RETRY_WORKFLOW ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "step"), [("CONFIRMED", "ACCEPT_REQUEST"), ("PROCESSING", "FULFILMENT_POLL")]
)
def test_retry_workflow_resends_the_step_and_restarts_the_clock(status, step, gateway):
    order = OrderFactory(status=status, stuck_minutes=200)
    clock = order.stuck_since

    assert execute(initiate(order), gateway).status == "SUCCESS"

    order.refresh_from_db()
    assert order.status == status
    assert order.stuck_since > clock
    assert [m.kind for m in gateway.sent] == [step]
    change = OrderStatusChange.objects.filter(order=order).last()
    assert (change.from_status, change.to_status) == (status, status)
    assert order.pk not in {
        row.order_id
        for row in __import__("healing.detection", fromlist=["x"]).stuck_orders_detect()
    }


def test_retry_workflow_gateway_error_keeps_the_clock():
    order = OrderFactory(status="CONFIRMED", stuck_minutes=61)
    clock = order.stuck_since
    with pytest.raises(HealingTransientError):
        execute(initiate(order), ScriptedGateway(fail=1))
    order.refresh_from_db()
    assert order.stuck_since == clock


def test_retry_workflow_without_a_vendor_fails(gateway):
    order = OrderFactory(status="PENDING", vendor=None, stuck_minutes=31)
    outcome = execute(initiate(order, "RETRY_WORKFLOW"), gateway)
    assert outcome.status == "FAILED"
    assert reload(HealingAction.objects.get(order=order)).error_message == "no vendor to contact"
