"""CANCEL_ORDER: cancel and refund exactly once."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.models import CreditEntry
from tests.factories import OrderFactory
from tests.healing.helpers import age_order, execute, initiate, reload  # noqa: F401

pytestmark = pytest.mark.django_db

# --- CANCEL_ORDER ---------------------------------------------------------------------


def test_cancel_refunds_credit_exactly_once(gateway):
    order = OrderFactory(status="PENDING", stuck_minutes=31, total=Decimal("80.00"))
    healing = initiate(order, "CANCEL_ORDER")

    assert execute(healing, gateway).status == "SUCCESS"
    # Running the same task again is a no-op (invariant 3).
    assert execute(healing, gateway).status == "STALE"

    order.refresh_from_db()
    assert order.status == "CANCELLED"
    assert CreditEntry.objects.filter(order=order, kind="REFUND").count() == 1
    assert reload(healing).resulting_status == "CANCELLED"
