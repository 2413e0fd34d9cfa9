from __future__ import annotations

import ast
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import IntegrityError, connection, transaction

from orders import services
from orders.errors import InvalidTransition, NoVendorAvailable, OrderMovedOn
from orders.models import (
    CreditEntry,
    Order,
    OrderStatus,
    OrderStatusChange,
    StatusWriteOutsideServices,
    Vendor,
    VendorAssignment,
)
from orders.selectors import credit_balance, vendor_select
from tests.factories import BuyerFactory, OrderFactory, VendorFactory

pytestmark = pytest.mark.django_db
SYSTEM = services.Actor.system()


def test_order_create_writes_history_charge_and_assignment():
    vendor = VendorFactory()
    order = services.order_create(
        buyer=BuyerFactory(), vendor=vendor, total=Decimal("99.50"), payment_method="CREDIT"
    )

    assert order.status == OrderStatus.PENDING
    change = OrderStatusChange.objects.get(order=order)
    assert (change.from_status, change.to_status, change.to_vendor_id) == ("", "PENDING", vendor.pk)
    assert CreditEntry.objects.get(order=order).amount == Decimal("-99.50")
    assert VendorAssignment.objects.filter(order=order, vendor=vendor, outcome="ACTIVE").exists()
    vendor.refresh_from_db()
    assert vendor.open_orders == 1


@pytest.mark.parametrize(
    ("start", "service", "end"),
    [
        ("PENDING", services.order_confirm, "CONFIRMED"),
        ("CONFIRMED", services.order_accept, "ACCEPTED"),
        ("ACCEPTED", services.order_start_processing, "PROCESSING"),
        ("PROCESSING", services.order_ship, "SHIPPED"),
        ("SHIPPED", services.order_deliver, "DELIVERED"),
    ],
)
def test_each_forward_transition_writes_one_history_row(start, service, end):
    order = OrderFactory(status=start, stuck_minutes=90)
    before = OrderStatusChange.objects.filter(order=order).count()

    service(order=order, actor=services.Actor.vendor())

    order.refresh_from_db()
    assert order.status == end
    rows = OrderStatusChange.objects.filter(order=order).order_by("id")
    assert rows.count() == before + 1
    last = rows.last()
    assert (last.from_status, last.to_status, last.actor_type) == (start, end, "VENDOR")
    # A status change restarts the stuck clock.
    assert order.stuck_since == order.status_changed_at == last.created_at


@pytest.mark.parametrize(
    ("start", "target"),
    [
        ("PENDING", "ACCEPTED"),
        ("PENDING", "DELIVERED"),
        ("CONFIRMED", "SHIPPED"),
        ("PROCESSING", "ACCEPTED"),
        ("DELIVERED", "CANCELLED"),
        ("CANCELLED", "PENDING"),
    ],
)
def test_invalid_transition_is_refused_and_writes_nothing(start, target):
    order = OrderFactory(status=start)
    before = OrderStatusChange.objects.count()

    with pytest.raises(InvalidTransition, match=f"from {start} to {target}"):
        services.order_transition(order=order, to_status=target, actor=SYSTEM)

    order.refresh_from_db()
    assert order.status == start
    assert OrderStatusChange.objects.count() == before


def test_transition_from_stale_status_is_refused():
    order = OrderFactory(status="PENDING")
    stale = Order.objects.get(pk=order.pk)
    services.order_confirm(order=order, actor=SYSTEM)

    with pytest.raises(OrderMovedOn), transaction.atomic():
        services.order_confirm(order=stale, actor=SYSTEM)
    assert OrderStatusChange.objects.filter(order=order, to_status="CONFIRMED").count() == 1


def test_status_write_outside_services_is_refused():
    order = OrderFactory()
    order.status = OrderStatus.CANCELLED
    with pytest.raises(StatusWriteOutsideServices):
        order.save()
    with pytest.raises(StatusWriteOutsideServices):
        Order.objects.filter(pk=order.pk).update(status=OrderStatus.CANCELLED)
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING
    # Other fields may still be saved.
    order.total = Decimal("1.00")
    order.save(update_fields=["total"])


def test_no_code_outside_orders_services_writes_order_status():
    """Invariant 1, statically: no module but orders/services/ assigns or
    updates an order's status (the seeder loads rows; it changes none)."""
    root = Path(__file__).resolve().parents[2]
    allowed = {*(root / "orders" / "services").glob("*.py"), root / "orders" / "models.py"}
    offenders = []
    for path in root.glob("*/**/*.py"):
        if ".venv" in path.parts or "tests" in path.parts or "migrations" in path.parts:
            continue
        if path in allowed:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            is_update = isinstance(node, ast.Call) and getattr(node.func, "attr", "") in {
                "update",
                "bulk_update",
            }
            if (
                is_update
                and any(kw.arg == "status" for kw in node.keywords)
                and "Order" in ast.unparse(node.func)
            ):
                offenders.append(f"{path}:{node.lineno}")
            if isinstance(node, ast.Attribute) and node.attr == "status_write_allowed":
                offenders.append(f"{path}:{node.lineno}")
            if isinstance(node, ast.Name) and node.id == "status_write_allowed":
                offenders.append(f"{path}:{node.lineno}")
    assert offenders == []


def test_reassignment_picks_a_vendor_that_never_had_the_order():
    first, second = VendorFactory(acceptance_rate=0.99), VendorFactory(acceptance_rate=0.98)
    third = VendorFactory(acceptance_rate=0.5)
    order = OrderFactory(vendor=first)

    services.order_reassign_vendor(
        order=order, vendor=vendor_select(order_id=order.pk), actor=SYSTEM, reason="test"
    )
    assert order.vendor_id == second.pk
    # The best-ranked vendor (first) had it already: the next pick is third.
    assert vendor_select(order_id=order.pk) == third

    services.order_reassign_vendor(order=order, vendor=third, actor=SYSTEM, reason="test")
    assert vendor_select(order_id=order.pk) is None
    outcomes = dict(
        VendorAssignment.objects.filter(order=order).values_list("vendor_id", "outcome")
    )
    assert outcomes == {first.pk: "REASSIGNED", second.pk: "REASSIGNED", third.pk: "ACTIVE"}
    loads = dict(Vendor.objects.values_list("pk", "open_orders"))
    assert loads == {first.pk: 0, second.pk: 0, third.pk: 1}
    last = OrderStatusChange.objects.filter(order=order).last()
    assert (last.from_vendor_id, last.to_vendor_id) == (second.pk, third.pk)


def test_reassignment_back_to_a_former_vendor_is_refused():
    first, second = VendorFactory(), VendorFactory()
    order = OrderFactory(vendor=first)
    services.order_reassign_vendor(order=order, vendor=second, actor=SYSTEM, reason="test")

    with pytest.raises(InvalidTransition, match="already had"), transaction.atomic():
        services.order_reassign_vendor(order=order, vendor=first, actor=SYSTEM, reason="test")
    order.refresh_from_db()
    assert order.vendor_id == second.pk
    # And the database itself holds one assignment per (order, vendor).
    with pytest.raises(IntegrityError), transaction.atomic():
        VendorAssignment.objects.create(order=order, vendor=first, assigned_at=order.created_at)


@pytest.mark.parametrize("status", ["PROCESSING", "SHIPPED", "DELIVERED", "CANCELLED"])
def test_reassignment_from_processing_or_later_is_refused(status):
    order = OrderFactory(status=status)
    with pytest.raises(InvalidTransition, match="cannot be reassigned"):
        services.order_reassign_vendor(
            order=order, vendor=VendorFactory(), actor=SYSTEM, reason="x"
        )


def test_reassignment_to_a_full_vendor_is_refused_and_rolled_back():
    full = VendorFactory(capacity=0)
    order = OrderFactory(status="CONFIRMED")
    with pytest.raises(NoVendorAvailable), transaction.atomic():
        services.order_reassign_vendor(order=order, vendor=full, actor=SYSTEM, reason="x")
    order.refresh_from_db()
    assert order.status == "CONFIRMED"


def test_vendor_selection_skips_inactive_and_full_vendors_with_deterministic_ties():
    order = OrderFactory()
    VendorFactory(is_active=False, acceptance_rate=1.0)
    VendorFactory(capacity=0, acceptance_rate=1.0)
    tie_a = VendorFactory(acceptance_rate=0.95)
    VendorFactory(acceptance_rate=0.95)
    assert vendor_select(order_id=order.pk) == tie_a


def test_cancel_refunds_credit_once_and_releases_vendor():
    order = OrderFactory(status="ACCEPTED", total=Decimal("120.00"))
    account = order.buyer.credit_account
    assert credit_balance(account=account) == Decimal("-120.00")

    services.order_cancel(order=order, actor=SYSTEM, reason="test")

    assert credit_balance(account=account) == Decimal("0.00")
    assert CreditEntry.objects.filter(order=order, kind="REFUND").count() == 1
    assert services.credit_refund(order=order) is False
    assert CreditEntry.objects.filter(order=order, kind="REFUND").count() == 1
    with pytest.raises(InvalidTransition):
        services.order_cancel(order=order, actor=SYSTEM, reason="again")
    order.vendor.refresh_from_db()
    assert order.vendor.open_orders == 0


def test_cancel_of_card_order_refunds_nothing():
    order = OrderFactory(payment_method="CARD")
    services.order_cancel(order=order, actor=SYSTEM, reason="test")
    assert not CreditEntry.objects.filter(order=order).exists()


def test_second_refund_row_is_impossible_in_the_database():
    order = OrderFactory(status="CANCELLED")
    CreditEntry.objects.create(account_id=order.buyer_id, order=order, kind="REFUND", amount=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditEntry.objects.create(account_id=order.buyer_id, order=order, kind="REFUND", amount=1)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_refunds_on_two_connections_leave_one_refund():
    order = OrderFactory(status="CANCELLED", total=Decimal("75.00"))
    barrier = threading.Barrier(2)
    results: list[bool] = []

    def refund() -> None:
        try:
            with transaction.atomic():
                barrier.wait(timeout=5)
                results.append(services.credit_refund(order=order))
        finally:
            connection.close()

    threads = [threading.Thread(target=refund) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert sorted(results) == [False, True]
    assert CreditEntry.objects.filter(order=order, kind="REFUND").count() == 1
    assert credit_balance(account=order.buyer.credit_account) == Decimal("0.00")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_cancellations_cancel_and_refund_once():
    order = OrderFactory(status="CONFIRMED", total=Decimal("40.00"))
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def cancel() -> None:
        try:
            mine = Order.objects.get(pk=order.pk)
            barrier.wait(timeout=5)
            services.order_cancel(order=mine, actor=SYSTEM, reason="race")
            outcomes.append("cancelled")
        except OrderMovedOn:
            outcomes.append("moved on")
        finally:
            connection.close()

    threads = [threading.Thread(target=cancel) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert sorted(outcomes) == ["cancelled", "moved on"]
    assert CreditEntry.objects.filter(order=order, kind="REFUND").count() == 1
    assert OrderStatusChange.objects.filter(order=order, to_status="CANCELLED").count() == 1
