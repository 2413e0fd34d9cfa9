from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from healing.cycle import healing_cycle_run
from healing.errors import ActionNotApplicable, HealingTransientError, NotStuck
from healing.execution import healing_execute, healing_fail, healing_initiate
from healing.models import HealingAction
from notifications.models import AdminNotification
from orders import services as order_services
from orders.models import CreditEntry, Order, OrderStatusChange, VendorMessage
from tests.factories import OrderFactory, VendorFactory
from tests.healing.conftest import ScriptedGateway

pytestmark = pytest.mark.django_db


def initiate(order, action=None):
    return healing_initiate(order=order, trigger="CLI", recovery_action=action)


def execute(healing, gateway=None):
    return healing_execute(
        healing_id=healing.pk, token=healing.claim_token, gateway=gateway or ScriptedGateway()
    )


def reload(healing) -> HealingAction:
    return HealingAction.objects.get(pk=healing.pk)


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


def test_final_failure_after_retries_ends_failed_with_notification():
    order = OrderFactory(status="PENDING", stuck_minutes=31)
    VendorFactory()
    healing = initiate(order)
    with pytest.raises(HealingTransientError) as raised:
        execute(healing, ScriptedGateway(fail=1))

    assert healing_fail(
        healing_id=healing.pk, token=raised.value.token, error="gateway down", retries=5
    )

    row = reload(healing)
    assert (row.recovery_status, row.retry_count, row.error_message) == (
        "FAILED",
        5,
        "gateway down",
    )
    assert AdminNotification.objects.get().details["retry_count"] == 5
    # The stale original token can no longer fail or run it.
    assert not healing_fail(healing_id=healing.pk, token=healing.claim_token, error="x", retries=0)


@pytest.mark.parametrize("final", ["DELIVERED", "CANCELLED"])
def test_an_order_that_finished_meanwhile_is_skipped(final, gateway):
    order = OrderFactory(status="SHIPPED" if final == "DELIVERED" else "PENDING", stuck_minutes=31)
    healing = healing_initiate(order=order, trigger="CLI", recovery_action="CANCEL_ORDER")
    order_services.order_transition(
        order=order, to_status=final, actor=order_services.Actor.system()
    )

    outcome = execute(healing, gateway)

    assert outcome.status == "SKIPPED"
    assert reload(healing).skip_reason == "ORDER_CLOSED"
    assert CreditEntry.objects.filter(order=order, kind="REFUND").count() == (final == "CANCELLED")


def test_vendor_progress_between_detection_and_execution_skips_as_recovered(gateway):
    order = OrderFactory(status="CONFIRMED", stuck_minutes=61)
    healing = initiate(order)
    order_services.order_accept(order=order, actor=order_services.Actor.vendor())

    assert execute(healing, gateway).status == "SKIPPED"
    assert reload(healing).skip_reason == "RECOVERED"
    assert gateway.sent == []


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


# --- Initiate ---------------------------------------------------------------------------


def test_initiate_is_idempotent_while_a_healing_is_active():
    order = OrderFactory(status="PENDING", stuck_minutes=31)
    assert initiate(order).pk == initiate(order).pk
    assert HealingAction.objects.count() == 1


def test_initiate_refuses_a_fresh_order_without_explicit_action():
    order = OrderFactory(status="PENDING", stuck_minutes=5)
    with pytest.raises(NotStuck, match="under its 30 min threshold"):
        initiate(order)
    assert initiate(order, "RETRY_WORKFLOW").recovery_action == "RETRY_WORKFLOW"


@pytest.mark.parametrize(
    ("status", "action"),
    [
        ("PROCESSING", "REASSIGN_VENDOR"),
        ("DELIVERED", "CANCEL_ORDER"),
        ("SHIPPED", "REASSIGN_VENDOR"),
    ],
)
def test_initiate_refuses_actions_that_do_not_apply(status, action):
    order = OrderFactory(status=status, stuck_minutes=500)
    with pytest.raises(ActionNotApplicable):
        initiate(order, action)


# --- The ladder, end to end through cycles -------------------------------------------


def age_order(order: Order, minutes: int) -> None:
    """Move an order's stuck clock back: as if it sat there for `minutes`."""
    from orders.models import status_write_allowed

    token = status_write_allowed.set(True)
    try:
        Order.objects.filter(pk=order.pk).update(
            stuck_since=timezone.now() - timedelta(minutes=minutes)
        )
    finally:
        status_write_allowed.reset(token)


@pytest.mark.django_db(transaction=True)
def test_pending_order_without_vendors_is_reassigned_twice_then_cancelled_and_refunded():
    order = OrderFactory(status="PENDING", stuck_minutes=31, total=Decimal("60.00"))

    outcomes = []
    for _ in range(3):
        healing_cycle_run(trigger="CLI")
        outcomes.append(
            HealingAction.objects.filter(order=order)
            .order_by("-id")
            .values_list("recovery_action", "recovery_status")[0]
        )
        age_order(order, 31)

    assert outcomes == [
        ("REASSIGN_VENDOR", "FAILED"),
        ("REASSIGN_VENDOR", "FAILED"),
        ("CANCEL_ORDER", "SUCCESS"),
    ]
    order.refresh_from_db()
    assert order.status == "CANCELLED"
    assert CreditEntry.objects.filter(order=order, kind="REFUND").count() == 1
    failed = AdminNotification.objects.get(order=order, notification_type="HEALING_FAILED")
    assert failed.occurrences == 2


@pytest.mark.django_db(transaction=True)
def test_accepted_order_failing_twice_escalates_once_and_is_left_alone(settings):
    settings.VENDOR_GATEWAY_BACKEND = "simulated"
    settings.VENDOR_GATEWAY_SIM_FAILURE_RATE = 1.0
    settings.HEALING_TASK_MAX_RETRIES = 1
    order = OrderFactory(status="ACCEPTED", stuck_minutes=121)
    VendorFactory.create_batch(3)

    for _ in range(4):
        healing_cycle_run(trigger="CLI")
        age_order(order, 121)

    statuses = list(
        HealingAction.objects.filter(order=order)
        .order_by("id")
        .values_list("recovery_action", "recovery_status")
    )
    assert statuses == [
        ("REASSIGN_VENDOR", "FAILED"),
        ("REASSIGN_VENDOR", "FAILED"),
        ("MANUAL_INTERVENTION", "MANUAL_REQUIRED"),
    ]
    assert (
        AdminNotification.objects.filter(
            order=order, notification_type="MANUAL_INTERVENTION_REQUIRED"
        ).count()
        == 1
    )
    manual = AdminNotification.objects.get(
        order=order, notification_type="MANUAL_INTERVENTION_REQUIRED"
    )
    assert manual.details["attempts"] == 2
    failed = AdminNotification.objects.get(order=order, notification_type="HEALING_FAILED")
    assert (failed.occurrences, failed.details["attempts"]) == (2, 2)
    order.refresh_from_db()
    assert order.status == "ACCEPTED"


# --- Statement budget ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "action", "expected"),
    [
        ("ACCEPTED", "REASSIGN_VENDOR", "SUCCESS"),
        ("CONFIRMED", "RETRY_WORKFLOW", "SUCCESS"),
        ("PENDING", "CANCEL_ORDER", "SUCCESS"),
        ("PROCESSING", "MANUAL_INTERVENTION", "MANUAL_REQUIRED"),
        ("PENDING", "REASSIGN_VENDOR", "FAILED"),
    ],
)
def test_the_heal_path_issues_at_most_eight_statements(status, action, expected):
    order = OrderFactory(status=status, stuck_minutes=500)
    if expected == "SUCCESS":
        VendorFactory()
    healing = initiate(order, action)

    with CaptureQueriesContext(connection) as queries:
        outcome = execute(healing)

    assert outcome.status == expected
    captured = [q["sql"] for q in queries.captured_queries]
    control = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
    statements = [sql for sql in captured if not sql.upper().startswith(control)]
    assert len(statements) <= 8, "\n".join(statements)
    # Inside the test's transaction each transaction the heal path opens is a
    # savepoint: one apply transaction (the claim, when a vendor is called,
    # is a single autocommitted statement). Work sent on commit (notification
    # delivery) is another task's, not the heal path's, and never runs here.
    assert sum(sql.upper().startswith("SAVEPOINT") for sql in captured) <= 1


def test_claim_with_a_wrong_token_does_nothing(gateway):
    order = OrderFactory(status="CONFIRMED", stuck_minutes=61)
    healing = initiate(order)
    outcome = healing_execute(healing_id=healing.pk, token=uuid.uuid4(), gateway=gateway)
    assert outcome.status == "STALE"
    assert reload(healing).recovery_status == "PENDING"
    assert gateway.sent == []
