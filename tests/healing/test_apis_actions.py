"""The healing API's write endpoints: POST heal/<order> and POST run-cycle
(outcomes, the seed's response bodies, waiting, refusals)."""

from __future__ import annotations

from unittest import mock

import pytest

from healing.models import HealingAction, HealingCycle
from orders.gateway import Delivery, DeliveryFailed
from orders.models import Order
from tests.api.helpers import assert_error
from tests.factories import (
    HealingActionFactory,
    HealingCycleFactory,
    OrderFactory,
    VendorFactory,
)
from tests.healing.api_helpers import BASE, HEALING_KEYS

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("api_defaults")]


class FailingGateway:
    name = "failing"

    def send(self, message):
        raise DeliveryFailed(
            Delivery(message=message, backend=self.name, status="FAILED", error="timeout")
        )


# --- heal -----------------------------------------------------------------------


def test_heal_with_the_rules_recommendation_reassigns(ops_api, rules, make_user):
    order = OrderFactory(status="PENDING", stuck_minutes=45)
    old_vendor = order.vendor_id
    other = VendorFactory(acceptance_rate=0.99)

    response = ops_api.post(f"{BASE}/heal/{order.pk}")

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"success", "retry_scheduled", "healing"}
    assert body["success"] is True and body["retry_scheduled"] is False
    healing = body["healing"]
    assert set(healing) == HEALING_KEYS
    assert healing["order_id"] == order.pk
    assert healing["action"] == healing["recovery_action"] == "REASSIGN_VENDOR"
    assert healing["recovery_status"] == "SUCCESS"
    assert healing["trigger"] == "API"
    assert healing["requested_by"] == "operations-user"
    assert (healing["previous_vendor_id"], healing["new_vendor_id"]) == (old_vendor, other.pk)
    assert healing["vendor_changed"] is True
    assert healing["error"] == ""
    assert Order.objects.get(pk=order.pk).vendor_id == other.pk


def test_heal_with_the_seeds_body(ops_api, rules):
    order = OrderFactory(status="PENDING", stuck_minutes=45)
    VendorFactory()

    response = ops_api.post(
        f"{BASE}/heal/{order.pk}",
        {"issueType": "STUCK_PENDING", "recoveryAction": "REASSIGN_VENDOR"},
    )

    assert response.status_code == 200
    assert response.json()["healing"]["recovery_status"] == "SUCCESS"


def test_heal_explicit_action_acts_on_an_order_that_is_not_stuck(ops_api, rules):
    order = OrderFactory(status="CONFIRMED", stuck_minutes=5)

    response = ops_api.post(f"{BASE}/heal/{order.pk}", {"recoveryAction": "RETRY_WORKFLOW"})

    assert response.status_code == 200
    healing = response.json()["healing"]
    assert (healing["recovery_action"], healing["recovery_status"]) == ("RETRY_WORKFLOW", "SUCCESS")
    assert healing["vendor_changed"] is False


def test_heal_failed_outcome_is_still_200_with_the_error(ops_api, rules):
    # The only vendor is the order's own: nobody to reassign to.
    order = OrderFactory(status="PENDING", stuck_minutes=45)

    response = ops_api.post(f"{BASE}/heal/{order.pk}")

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["healing"]["recovery_status"] == "FAILED"
    assert body["healing"]["error"] == "no alternative vendor available"
    assert body["healing"]["new_vendor_id"] is None


def test_heal_transient_failure_hands_the_retry_to_the_worker(ops_api, rules, monkeypatch):
    order = OrderFactory(status="PENDING", stuck_minutes=45)
    VendorFactory()
    monkeypatch.setattr("healing.execution.get_gateway", lambda: FailingGateway())

    with mock.patch("healing.tasks.heal_order.apply_async") as apply_async:
        response = ops_api.post(f"{BASE}/heal/{order.pk}")

    assert response.status_code == 200
    body = response.json()
    assert body["retry_scheduled"] is True
    healing = HealingAction.objects.get(order=order)
    assert body["healing"]["id"] == healing.pk
    assert body["healing"]["recovery_status"] == "IN_PROGRESS"
    apply_async.assert_called_once()
    args = apply_async.call_args.kwargs["args"]
    assert args == (healing.pk, str(healing.claim_token))
    assert apply_async.call_args.kwargs["countdown"] > 0
    # The inline attempt counts: the worker continues at retry 1.
    assert apply_async.call_args.kwargs["retries"] == 1


def test_heal_returns_the_active_healing_instead_of_a_second_one(ops_api, rules):
    order = OrderFactory(status="PENDING", stuck_minutes=45)
    running = HealingActionFactory(order=order, recovery_status="IN_PROGRESS")

    response = ops_api.post(f"{BASE}/heal/{order.pk}")

    assert response.status_code == 200
    assert response.json()["healing"]["id"] == running.pk
    assert response.json()["healing"]["recovery_status"] == "IN_PROGRESS"
    assert HealingAction.objects.filter(order=order).count() == 1


def test_heal_order_that_is_not_stuck_is_409_with_the_reason(ops_api, rules):
    order = OrderFactory(status="PENDING", stuck_minutes=5)

    response = ops_api.post(f"{BASE}/heal/{order.pk}")

    error = assert_error(response, 409, "not_stuck")
    assert "under its 30 min threshold" in error["message"]
    assert not HealingAction.objects.exists()


def test_heal_issue_type_that_does_not_match_the_order_is_409(ops_api, rules):
    order = OrderFactory(status="PENDING", stuck_minutes=45)

    response = ops_api.post(f"{BASE}/heal/{order.pk}", {"issueType": "STUCK_PROCESSING"})

    error = assert_error(response, 409, "not_stuck", "issueType")
    assert "STUCK_PENDING" in error["message"]


def test_heal_finished_order_is_409(ops_api, rules):
    order = OrderFactory(status="DELIVERED")

    response = ops_api.post(f"{BASE}/heal/{order.pk}", {"recoveryAction": "RETRY_WORKFLOW"})

    assert_error(response, 409, "action_not_applicable", "orderId")


def test_heal_reassigning_a_processing_order_is_409(ops_api, rules):
    order = OrderFactory(status="PROCESSING", stuck_minutes=500)

    response = ops_api.post(f"{BASE}/heal/{order.pk}", {"recoveryAction": "REASSIGN_VENDOR"})

    assert_error(response, 409, "action_not_applicable", "recoveryAction")


# --- run-cycle ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_run_cycle_seed_body_with_a_healed_and_a_failed_order(ops_api, rules):
    # PENDING order whose only other vendor is inactive: reassignment fails.
    pending = OrderFactory(status="PENDING", stuck_minutes=45)
    confirmed = OrderFactory(status="CONFIRMED", stuck_minutes=61)
    confirmed.vendor.is_active = False
    confirmed.vendor.save(update_fields=["is_active"])

    response = ops_api.post(f"{BASE}/run-cycle")

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"success", "result"}
    assert body["success"] is True
    result = body["result"]
    assert set(result) >= {"healed", "failed"}
    assert set(result) == {
        "healed",
        "failed",
        "cycle_id",
        "detected",
        "dispatched",
        "redispatched",
        "pending",
        "skipped",
        "escalated",
        "guard_tripped",
        "timed_out",
        "waited_seconds",
    }
    assert (result["healed"], result["failed"]) == (1, 1)
    assert (result["detected"], result["pending"], result["timed_out"]) == (2, 0, False)
    cycle = HealingCycle.objects.get(pk=result["cycle_id"])
    assert cycle.trigger == "API" and cycle.status == "FINISHED"
    outcomes = dict(HealingAction.objects.values_list("order_id", "recovery_status"))
    assert outcomes == {pending.pk: "FAILED", confirmed.pk: "SUCCESS"}


def test_run_cycle_waits_a_bounded_time_and_reports_what_is_pending(ops_api, rules, settings):
    # Inside the test's transaction the dispatch (on commit) never happens:
    # the healings stay pending, as if no worker had picked them up yet.
    settings.HEALING_API_WAIT_SECONDS = 0.3
    OrderFactory(status="PENDING", stuck_minutes=45)

    response = ops_api.post(f"{BASE}/run-cycle")

    assert response.status_code == 200
    result = response.json()["result"]
    assert (result["detected"], result["pending"], result["healed"]) == (1, 1, 0)
    assert result["timed_out"] is True
    assert 0.3 <= result["waited_seconds"] < 3


def test_run_cycle_wait_0_answers_202_with_the_cycle_to_poll(ops_api, rules, settings):
    # Issue 20 item 16: no worker held while the healings run.
    settings.HEALING_API_WAIT_SECONDS = 30
    OrderFactory(status="PENDING", stuck_minutes=45)

    response = ops_api.post(f"{BASE}/run-cycle?wait=0")

    assert response.status_code == 202, response.content
    result = response.json()["result"]
    assert result["waited_seconds"] < 5
    assert (result["detected"], result["pending"], result["timed_out"]) == (1, 1, True)
    assert response["Location"].endswith(f"{BASE}/cycles/{result['cycle_id']}")
    poll = ops_api.get(response["Location"])
    assert poll.status_code == 200 and poll.json()["cycle"]["id"] == result["cycle_id"]


def test_run_cycle_wait_0_is_documented(admin_api):
    schema = admin_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"][f"{BASE}/run-cycle"]["post"]

    assert "202" in operation["responses"]
    assert "cycle_id" in operation["responses"]["202"]["description"]
    assert "wait" in {parameter["name"] for parameter in operation["parameters"]}


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_run_cycle_bad_wait_is_400(ops_api, rules, value):
    response = ops_api.post(f"{BASE}/run-cycle?wait={value}")

    assert_error(response, 400, "invalid", "wait")


def test_run_cycle_while_another_runs_is_409(ops_api, rules):
    running = HealingCycleFactory(status="RUNNING", trigger="BEAT")

    response = ops_api.post(f"{BASE}/run-cycle")

    error = assert_error(response, 409, "cycle_running")
    assert f"cycle {running.pk}" in error["message"]
