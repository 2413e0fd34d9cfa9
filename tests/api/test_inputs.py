"""Issue 20 item 1: every write endpoint refuses an unknown body key, naming it
(and the expected spelling when it is only a case variant)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from healing.models import HealingAction
from orders.models import Order
from tests.api.helpers import PASSWORD, assert_error
from tests.factories import AdminNotificationFactory, OrderFactory, VendorFactory

pytestmark = pytest.mark.django_db

BASE = "/api/v1/self-healing"


def test_snake_case_recovery_action_is_refused_not_replaced_by_the_rules(ops_api, rules):
    # The bug: {"recovery_action": ...} was ignored and the ladder's
    # REASSIGN_VENDOR ran instead of the operator's RETRY_WORKFLOW.
    order = OrderFactory(status="PENDING", stuck_minutes=45)
    vendor = order.vendor_id
    VendorFactory()

    response = ops_api.post(f"{BASE}/heal/{order.pk}", {"recovery_action": "RETRY_WORKFLOW"})

    error = assert_error(response, 400, "unknown_field", "recovery_action")
    assert "did you mean recoveryAction" in error["message"]
    assert not HealingAction.objects.exists()
    assert Order.objects.get(pk=order.pk).vendor_id == vendor


@pytest.mark.parametrize(
    ("key", "hint"),
    [("issue_type", "issueType"), ("IssueType", "issueType"), ("RECOVERYACTION", "recoveryAction")],
)
def test_case_variants_name_the_expected_spelling(ops_api, rules, key, hint):
    order = OrderFactory(status="PENDING", stuck_minutes=45)

    response = ops_api.post(f"{BASE}/heal/{order.pk}", {key: "STUCK_PENDING"})

    error = assert_error(response, 400, "unknown_field", key)
    assert f"did you mean {hint}?" in error["message"]


def test_an_unknown_key_with_no_near_spelling_lists_the_expected_ones(ops_api, rules):
    order = OrderFactory(status="PENDING", stuck_minutes=45)

    response = ops_api.post(f"{BASE}/heal/{order.pk}", {"force": True})

    error = assert_error(response, 400, "unknown_field", "force")
    assert "issueType" in error["message"] and "recoveryAction" in error["message"]


def test_run_cycle_takes_no_body_keys(ops_api, rules):
    response = ops_api.post(f"{BASE}/run-cycle", {"dryRun": True})

    assert_error(response, 400, "unknown_field", "dryRun")
    assert ops_api.post(f"{BASE}/run-cycle", {}).status_code == 200


@pytest.mark.parametrize(
    ("action", "key", "hint"), [("acknowledge", "Comment", "comment"), ("resolve", "NOTE", "note")]
)
def test_notification_writes_refuse_unknown_keys(admin_api, action, key, hint):
    notification = AdminNotificationFactory()

    response = admin_api.post(f"{BASE}/notifications/{notification.pk}/{action}", {key: "x"})

    error = assert_error(response, 400, "unknown_field", key)
    assert f"did you mean {hint}?" in error["message"]
    notification.refresh_from_db()
    assert notification.acknowledged_at is None and notification.resolved_at is None


def test_token_endpoints_refuse_unknown_keys(make_user):
    make_user("OPERATIONS", "ops")
    client = APIClient()

    response = client.post(
        "/api/v1/auth/token", {"username": "ops", "password": PASSWORD, "otp": "1"}
    )
    assert_error(response, 400, "unknown_field", "otp")

    refresh = client.post("/api/v1/auth/token", {"username": "ops", "password": PASSWORD})
    response = client.post(
        "/api/v1/auth/token/refresh", {"refresh": refresh.json()["refresh"], "Access": "x"}
    )
    assert_error(response, 400, "unknown_field", "Access")
