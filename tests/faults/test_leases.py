"""Invariant 7 at its edges: whatever a lost task leaves behind, the next
cycle picks it up, including when the order no longer needs healing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from healing.cycle import Dispatch, healing_cycle_run
from healing.execution import healing_execute
from healing.models import HealingAction
from orders import services as order_services
from tests.factories import OrderFactory, VendorFactory

pytestmark = [pytest.mark.django_db(transaction=True)]


def lose_every_message() -> tuple[list[tuple[int, str]], Dispatch]:
    lost: list[tuple[int, str]] = []
    return lost, lost.extend


@pytest.mark.parametrize("vendor_action", ["accept", "cancel"])
def test_a_lost_healing_of_an_order_that_moved_on_is_finished_by_the_next_cycle(vendor_action):
    # Given a stuck order whose healing task is lost (broker restart) ...
    VendorFactory(capacity=10)
    order = OrderFactory(status="CONFIRMED", stuck_minutes=61)
    lost, dispatch = lose_every_message()
    healing_cycle_run(trigger="BEAT", dispatch=dispatch)
    healing = HealingAction.objects.get(order=order)
    # ... and the order moves on by itself before the lease runs out.
    if vendor_action == "accept":
        order_services.order_accept(order=order, actor=order_services.Actor.vendor())
    else:
        order_services.order_cancel(order=order, actor=order_services.Actor.system(), reason="x")
    HealingAction.objects.filter(pk=healing.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )

    # When the next cycle runs and its messages are delivered,
    sent, dispatch = lose_every_message()
    result = healing_cycle_run(trigger="BEAT", dispatch=dispatch)
    for healing_id, token in sent:
        healing_execute(healing_id=healing_id, token=token)

    # then the orphaned healing was re-dispatched and ended without an effect.
    assert result.redispatched == 1
    healing.refresh_from_db()
    assert healing.recovery_status == "SKIPPED"
    assert healing.skip_reason == ("RECOVERED" if vendor_action == "accept" else "ORDER_CLOSED")
