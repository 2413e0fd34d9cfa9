"""orders.sql.pipelined: a transaction's statements in one round trip, refused as before.

PostgreSQL only (on SQLite the block is a no-op and every check runs at once,
which the rest of the suite covers). The reassignment is the statement chain
healing pipelines (healing.actions.reassign_vendor); each test compares what
the pipelined block raises and leaves behind with what the same call does
without it.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from orders import sql
from orders.errors import InvalidTransition, NoVendorAvailable, OrderMovedOn
from orders.models import OrderStatusChange, Vendor, VendorAssignment
from orders.services import Actor, order_reassign_vendor
from tests.factories import OrderFactory, VendorFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _reassign(order, vendor, *, expected_status: str = "PENDING") -> None:
    order_reassign_vendor(
        order=order,
        vendor=vendor,
        actor=Actor.system(),
        reason="test",
        expected_status=expected_status,
        now=timezone.now(),
    )


def _block(pipelined: bool) -> Any:
    return sql.pipelined() if pipelined else contextlib.nullcontext()


def _state(order) -> tuple:
    """What a reassignment writes: the order's vendor, its history, assignments, loads."""
    order.refresh_from_db()
    loads = dict(Vendor.objects.values_list("pk", "open_orders"))
    assignments = sorted(
        VendorAssignment.objects.filter(order=order).values_list("vendor_id", "ended_at")
    )
    history = OrderStatusChange.objects.filter(order=order).count()
    return order.vendor_id, history, assignments, loads


def test_statements_are_sent_before_any_answer_is_read_and_checked_at_the_end():
    old, new = VendorFactory(), VendorFactory()
    order = OrderFactory(vendor=old)
    with transaction.atomic(), sql.pipelined():
        _reassign(order, new)
        assert connection.connection.pgconn.pipeline_status  # still queued, unanswered
        # The compare-and-set's check (it updates the instance) has not run yet.
        assert order.vendor_id == old.pk
    assert order.vendor_id == new.pk
    vendor_id, history, assignments, loads = _state(order)
    assert (vendor_id, history) == (new.pk, 2)  # creation + reassignment
    assert [vendor for vendor, _ in assignments] == sorted([old.pk, new.pk])
    assert (loads[old.pk], loads[new.pk]) == (0, 1)
    assert not connection.connection.pgconn.pipeline_status


@pytest.mark.parametrize("pipelined", [False, True])
def test_an_order_that_moved_on_is_refused_and_nothing_after_it_stays(pipelined):
    old, new = VendorFactory(), VendorFactory()
    order = OrderFactory(vendor=old)
    before = _state(order)
    with pytest.raises(OrderMovedOn), transaction.atomic(), _block(pipelined):
        _reassign(order, new, expected_status="CONFIRMED")
    assert _state(order) == before


@pytest.mark.parametrize("pipelined", [False, True])
def test_the_refusal_wins_over_a_database_error_a_later_statement_then_hits(pipelined):
    # The order moved on, so the compare-and-set refuses; without the pipeline
    # nothing after it runs. Pipelined, the load move runs too and takes the
    # old vendor below zero (a CHECK violation): the caller still sees the
    # order moved on, not the constraint.
    old, new = VendorFactory(), VendorFactory()
    order = OrderFactory(vendor=old)
    Vendor.objects.filter(pk=old.pk).update(open_orders=0)
    before = _state(order)
    with pytest.raises(OrderMovedOn), transaction.atomic(), _block(pipelined):
        _reassign(order, new, expected_status="CONFIRMED")
    assert _state(order) == before


@pytest.mark.parametrize("pipelined", [False, True])
def test_a_database_error_with_every_earlier_check_passed_is_raised_as_django_raises_it(
    pipelined,
):
    old, new = VendorFactory(), VendorFactory()
    order = OrderFactory(vendor=old)
    Vendor.objects.filter(pk=old.pk).update(open_orders=0)
    before = _state(order)
    with pytest.raises(IntegrityError), transaction.atomic(), _block(pipelined):
        _reassign(order, new)
    assert _state(order) == before


@pytest.mark.parametrize("pipelined", [False, True])
def test_a_full_vendor_and_a_vendor_that_had_the_order_are_told_apart(pipelined):
    old, full, former = VendorFactory(), VendorFactory(capacity=1), VendorFactory()
    Vendor.objects.filter(pk=full.pk).update(open_orders=1)
    order = OrderFactory(vendor=former)
    _reassign(order, old)  # ``former`` had the order
    before = _state(order)
    for vendor, error in ((full, NoVendorAvailable), (former, InvalidTransition)):
        with pytest.raises(error), transaction.atomic(), _block(pipelined):
            _reassign(order, vendor)
    assert _state(order) == before


def test_a_pipelined_block_needs_a_transaction_and_an_inner_one_joins_the_outer():
    with pytest.raises(RuntimeError, match="needs a transaction"), sql.pipelined():
        pass
    old, new = VendorFactory(), VendorFactory()
    order = OrderFactory(vendor=old)
    with transaction.atomic(), sql.pipelined():
        with sql.pipelined():
            _reassign(order, new)
        assert order.vendor_id == old.pk  # the inner block left the checks to the outer
    assert order.vendor_id == new.pk
