"""healing.execution: initiate, execute (skips, stale claims), retry or fail, statements."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from healing.errors import ActionNotApplicable, HealingTransientError, NotStuck
from healing.execution import healing_execute, healing_fail, healing_initiate
from healing.models import HealingAction
from notifications.models import AdminNotification
from orders import services as order_services
from orders.models import CreditEntry
from tests.factories import OrderFactory, VendorFactory
from tests.healing.conftest import ScriptedGateway
from tests.healing.helpers import age_order, execute, initiate, reload  # noqa: F401

pytestmark = pytest.mark.django_db


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


@pytest.mark.postgres
def test_the_heal_path_prepares_its_statements_once_and_reuses_them():
    """Issue 15: parsing and planning were 42 % of PostgreSQL's CPU a heal."""
    VendorFactory.create_batch(3)
    for _ in range(8):
        outcome = execute(initiate(OrderFactory(status="ACCEPTED", stuck_minutes=500)))
        assert outcome.status == "SUCCESS"
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")
        prepared = dict(cursor.fetchall())
    claim_and_load = [runs for text, runs in prepared.items() if text.startswith("WITH claimed AS")]
    finish = [
        runs
        for text, runs in prepared.items()
        if text.startswith('UPDATE "healing_actions" SET "recovery_status"')
    ]
    # One prepared statement for the claim-and-load and one for the result,
    # each prepared after its fifth run at the latest (earlier tests on this
    # connection may have run them too) and then reused by the heals after it.
    assert len(claim_and_load) == 1 and claim_and_load[0] >= 3
    assert len(finish) == 1 and finish[0] >= 3


def test_claim_with_a_wrong_token_does_nothing(gateway):
    order = OrderFactory(status="CONFIRMED", stuck_minutes=61)
    healing = initiate(order)
    outcome = healing_execute(healing_id=healing.pk, token=uuid.uuid4(), gateway=gateway)
    assert outcome.status == "STALE"
    assert reload(healing).recovery_status == "PENDING"
    assert gateway.sent == []
