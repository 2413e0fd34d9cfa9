"""Invariants 2, 3 and 4 (docs/INVARIANTS.md), on real PostgreSQL connections: at most
one active healing per order (2), a healing's effect happens at most once
however many times its task runs (3), and only while the order is still in the
status it was detected in, so a vendor acting meanwhile wins (4).

Invariants 6, 7 and 8 (the cycle) are in test_invariants_cycle.py."""

from __future__ import annotations

import time

import pytest
from django.db import IntegrityError, transaction

from healing.cycle import healing_cycle_run
from healing.execution import healing_execute, healing_initiate
from healing.models import HealingAction
from orders import services as order_services
from orders.models import Order, OrderStatusChange, VendorMessage
from tests.factories import HealingActionFactory, OrderFactory, VendorFactory
from tests.healing.conftest import ScriptedGateway, run_in_threads
from tests.healing.helpers import collect

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_active_healings_for_one_order_are_impossible_in_the_database():
    order = OrderFactory(status="PENDING", stuck_minutes=31)
    HealingActionFactory(order=order, recovery_status="PENDING")
    with pytest.raises(IntegrityError), transaction.atomic():
        HealingActionFactory(order=order, recovery_status="IN_PROGRESS")
    # Finished ones do not count.
    HealingActionFactory(order=order, recovery_status="FAILED")


def test_concurrent_initiations_leave_one_active_healing():
    order = OrderFactory(status="PENDING", stuck_minutes=31)
    results = run_in_threads(
        *[lambda: healing_initiate(order=Order.objects.get(pk=order.pk), trigger="API").pk] * 4
    )
    assert len(set(results)) == 1, results
    assert HealingAction.objects.filter(order=order).count() == 1


def test_same_healing_executed_twice_at_once_has_one_effect():
    order = OrderFactory(status="CONFIRMED", stuck_minutes=61)
    healing = healing_initiate(order=order, trigger="CLI")
    gateway = ScriptedGateway(during=lambda message: time.sleep(0.2))

    outcomes = run_in_threads(
        lambda: healing_execute(healing_id=healing.pk, token=healing.claim_token, gateway=gateway),
        lambda: healing_execute(healing_id=healing.pk, token=healing.claim_token, gateway=gateway),
    )

    assert sorted(o.status for o in outcomes) == ["STALE", "SUCCESS"], outcomes
    assert len(gateway.sent) == 1  # the duplicate never reached the vendor
    assert OrderStatusChange.objects.filter(order=order, reason__contains="re-sent").count() == 1
    assert VendorMessage.objects.filter(order=order).count() == 1


def test_same_cancellation_executed_twice_at_once_refunds_once():
    order = OrderFactory(status="PENDING", stuck_minutes=31)
    healing = healing_initiate(order=order, trigger="CLI", recovery_action="CANCEL_ORDER")

    outcomes = run_in_threads(
        *[lambda: healing_execute(healing_id=healing.pk, token=healing.claim_token)] * 3
    )

    assert sorted(o.status for o in outcomes) == ["STALE", "STALE", "SUCCESS"], outcomes
    assert order.credit_entries.filter(kind="REFUND").count() == 1


def test_vendor_accepting_while_its_reassignment_runs_wins_and_the_offer_is_withdrawn():
    order = OrderFactory(status="CONFIRMED", stuck_minutes=61)
    original_vendor = order.vendor_id
    VendorFactory()
    healing = healing_initiate(order=order, trigger="CLI", recovery_action="REASSIGN_VENDOR")

    def vendor_accepts(message) -> None:
        if message.kind == "OFFER":
            # The original vendor acts on its own connection mid-call.
            run_in_threads(
                lambda: order_services.order_accept(
                    order=Order.objects.get(pk=order.pk), actor=order_services.Actor.vendor()
                )
            )

    gateway = ScriptedGateway(during=vendor_accepts)
    outcome = healing_execute(healing_id=healing.pk, token=healing.claim_token, gateway=gateway)

    assert outcome.status == "SKIPPED"
    healing.refresh_from_db()
    assert (healing.recovery_status, healing.skip_reason) == ("SKIPPED", "RECOVERED")
    order.refresh_from_db()
    assert (order.status, order.vendor_id) == ("ACCEPTED", original_vendor)
    assert [m.kind for m in gateway.sent] == ["OFFER", "WITHDRAW"]
    assert set(VendorMessage.objects.filter(order=order).values_list("kind", flat=True)) == {
        "OFFER",
        "WITHDRAW",
    }


def test_many_vendors_accepting_during_a_cycle_never_lose_their_change():
    VendorFactory.create_batch(3, capacity=1000)
    orders = [OrderFactory(status="CONFIRMED", stuck_minutes=61) for _ in range(6)]
    accepted = {o.pk for o in orders[::2]}

    def accept_half(message) -> None:
        if message.order_id in accepted:
            run_in_threads(
                lambda: order_services.order_accept(
                    order=Order.objects.get(pk=message.order_id),
                    actor=order_services.Actor.vendor(),
                )
            )

    gateway = ScriptedGateway(during=accept_half)
    sent, dispatch = collect()
    healing_cycle_run(trigger="CLI", dispatch=dispatch)
    run_in_threads(
        *[
            (lambda pair=pair: healing_execute(healing_id=pair[0], token=pair[1], gateway=gateway))
            for pair in sent
        ]
    )

    for order in orders:
        order.refresh_from_db()
        healing = HealingAction.objects.get(order=order)
        if order.pk in accepted:
            assert order.status == "ACCEPTED"
            assert healing.recovery_status == "SKIPPED"
        else:
            assert order.status == "CONFIRMED"
            assert healing.recovery_status == "SUCCESS"


def test_a_healing_acts_only_on_the_status_it_was_detected_in():
    order = OrderFactory(status="PENDING", stuck_minutes=31)
    VendorFactory()
    sent, dispatch = collect()
    healing_cycle_run(trigger="CLI", dispatch=dispatch)
    order_services.order_confirm(order=order, actor=order_services.Actor.vendor())

    ((healing_id, token),) = sent
    assert healing_execute(healing_id=healing_id, token=token).status == "SKIPPED"
    order.refresh_from_db()
    assert order.status == "CONFIRMED"
