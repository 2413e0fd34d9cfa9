"""Each healing endpoint's behaviour, and the seed's response bodies key for key."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

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

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("api_defaults")]

BASE = "/api/v1/self-healing"
SEED_STUCK_KEYS = {"order_id", "issue_type", "stuck_minutes", "recommended_action"}
SEED_STATISTICS_KEYS = {
    "issue_type",
    "recovery_action",
    "recovery_status",
    "total_cases",
    "avg_recovery_time_minutes",
    "successful_recoveries",
    "failed_recoveries",
}
HEALING_KEYS = {
    "id",
    "order_id",
    "cycle_id",
    "trigger",
    "issue_type",
    "action",
    "recovery_action",
    "recovery_status",
    "skip_reason",
    "error",
    "detected_status",
    "resulting_status",
    "stuck_minutes",
    "attempt_number",
    "retry_count",
    "dry_run",
    "previous_vendor_id",
    "new_vendor_id",
    "vendor_changed",
    "admin_notified",
    "issue_detected_at",
    "recovery_attempted_at",
    "completed_at",
    "recovery_duration_seconds",
    "requested_by",
    # Issue 16: what the machinery is doing with it.
    "machinery_state",
    "next_attempt_at",
    "lease_expires_at",
}


class FailingGateway:
    name = "failing"

    def send(self, message):
        raise DeliveryFailed(
            Delivery(message=message, backend=self.name, status="FAILED", error="timeout")
        )


# --- stuck-orders ---------------------------------------------------------------


def test_stuck_orders_seed_body(ops_api, rules):
    stuck = OrderFactory(status="PENDING", stuck_minutes=45)
    OrderFactory(status="PENDING", stuck_minutes=5)  # under the 30 min threshold
    confirmed = OrderFactory(status="CONFIRMED", stuck_minutes=90)

    response = ops_api.get(f"{BASE}/stuck-orders")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"success", "count", "stuckOrders", "ageSeconds"}
    assert body["success"] is True
    assert body["count"] == 2
    rows = {row["order_id"]: row for row in body["stuckOrders"]}
    assert set(rows) == {stuck.pk, confirmed.pk}
    for row in body["stuckOrders"]:
        assert set(row) >= SEED_STUCK_KEYS
        assert isinstance(row["order_id"], int) and isinstance(row["stuck_minutes"], int)
    assert rows[stuck.pk]["issue_type"] == "STUCK_PENDING"
    assert rows[stuck.pk]["recommended_action"] == "REASSIGN_VENDOR"
    assert 45 <= rows[stuck.pk]["stuck_minutes"] <= 46
    assert rows[confirmed.pk]["issue_type"] == "STUCK_CONFIRMED"
    assert rows[confirmed.pk]["recommended_action"] == "RETRY_WORKFLOW"


def test_stuck_orders_limit(ops_api, rules):
    for _ in range(3):
        OrderFactory(status="PENDING", stuck_minutes=45)

    body = ops_api.get(f"{BASE}/stuck-orders?limit=2").json()

    assert body["count"] == 2 and len(body["stuckOrders"]) == 2


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


# --- statistics and kpis -----------------------------------------------------


def _finished_healing(status: str, minutes: float, **kwargs) -> HealingAction:
    detected = timezone.now() - timedelta(hours=1)
    return HealingActionFactory(
        recovery_status=status,
        issue_detected_at=detected,
        created_at=detected,
        recovery_attempted_at=detected,
        completed_at=detected + timedelta(minutes=minutes),
        recovery_duration_seconds=minutes * 60,
        claim_token=None,
        lease_expires_at=None,
        **kwargs,
    )


def test_statistics_seed_body(client_for):
    _finished_healing("SUCCESS", 2)
    _finished_healing("SUCCESS", 3)
    _finished_healing("FAILED", 10)

    response = client_for("VIEWER").get(f"{BASE}/statistics?days=7")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"success", "days", "statistics", "ageSeconds"}
    assert body["success"] is True and body["days"] == 7
    # One row per recovery status, as healing_statistics_view groups (issue 20 item 5).
    assert [r["recovery_status"] for r in body["statistics"]] == ["FAILED", "SUCCESS"]
    failed, row = body["statistics"]
    assert set(row) >= SEED_STATISTICS_KEYS
    assert (row["issue_type"], row["recovery_action"]) == ("STUCK_PENDING", "REASSIGN_VENDOR")
    assert row["recovery_status"] == "SUCCESS"
    assert (row["total_cases"], row["successful_recoveries"], row["failed_recoveries"]) == (2, 2, 0)
    assert (failed["total_cases"], failed["failed_recoveries"]) == (1, 1)
    assert isinstance(row["avg_recovery_time_minutes"], int | float)


def test_statistics_days_defaults_to_7(client_for):
    body = client_for("VIEWER").get(f"{BASE}/statistics").json()

    assert body == {"success": True, "days": 7, "statistics": [], "ageSeconds": 0.0}


def test_kpis_body(client_for):
    _finished_healing("SUCCESS", 2)

    response = client_for("VIEWER").get(f"{BASE}/kpis?days=30")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"success", "days", "kpis"}
    assert body["days"] == 30
    kpis = {kpi["name"]: kpi for kpi in body["kpis"]}
    assert set(kpis) == {
        "healing_success_rate",
        "avg_recovery_time_minutes",
        "manual_intervention_rate",
        "admin_notification_rate",
    }
    for kpi in body["kpis"]:
        assert set(kpi) >= {"name", "value", "target", "met"}
    assert kpis["avg_recovery_time_minutes"]["met"] is True


# --- healing-actions, cycles, rules ---------------------------------------------


def test_healing_actions_filters_and_pagination(ops_api):
    now = timezone.now()
    old = HealingActionFactory(
        recovery_status="FAILED", issue_detected_at=now - timedelta(days=3), claim_token=None
    )
    confirmed_order = OrderFactory(status="CONFIRMED", stuck_minutes=70)
    retry = HealingActionFactory(
        order=confirmed_order,
        issue_type="STUCK_CONFIRMED",
        recovery_action="RETRY_WORKFLOW",
        recovery_status="SUCCESS",
    )
    newest = HealingActionFactory(recovery_status="PENDING")

    def ids(query: str = "") -> list[int]:
        response = ops_api.get(f"{BASE}/healing-actions?{query}")
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    assert set(ids()) == {old.pk, retry.pk, newest.pk}
    assert ids(f"order={confirmed_order.pk}") == [retry.pk]
    assert ids("status=FAILED") == [old.pk]
    assert ids("issue_type=STUCK_CONFIRMED") == [retry.pk]
    assert ids("action=RETRY_WORKFLOW") == [retry.pk]
    since = (now - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert set(ids(f"detected_from={since}")) == {retry.pk, newest.pk}
    assert ids(f"detected_to={since}") == [old.pk]

    page = ops_api.get(f"{BASE}/healing-actions?limit=2").json()
    assert set(page) == {"success", "count", "next", "previous", "results"}
    assert page["count"] == 3 and len(page["results"]) == 2 and page["previous"] is None
    assert "offset=2" in page["next"]
    last = ops_api.get(page["next"]).json()
    assert len(last["results"]) == 1 and last["next"] is None and last["previous"]
    assert set(last["results"][0]) == HEALING_KEYS


def test_healing_action_detail(ops_api):
    healing = HealingActionFactory(recovery_status="SUCCESS")

    response = ops_api.get(f"{BASE}/healing-actions/{healing.pk}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"success", "healing"}
    assert body["healing"]["id"] == healing.pk
    assert set(body["healing"]) == HEALING_KEYS


def test_cycles_list_and_detail(ops_api):
    older = HealingCycleFactory(started_at=timezone.now() - timedelta(hours=1))
    newer = HealingCycleFactory(status="FAILED", trigger="BEAT")

    listing = ops_api.get(f"{BASE}/cycles").json()
    assert set(listing) == {"success", "count", "next", "previous", "results"}
    assert [row["id"] for row in listing["results"]] == [newer.pk, older.pk]
    assert [r["id"] for r in ops_api.get(f"{BASE}/cycles?status=FAILED").json()["results"]] == [
        newer.pk
    ]

    detail = ops_api.get(f"{BASE}/cycles/{older.pk}")
    assert detail.status_code == 200
    assert set(detail.json()) == {"success", "cycle"}
    assert detail.json()["cycle"]["id"] == older.pk


def test_cycle_counts_come_from_its_healings_as_they_stand(ops_api):
    # The row's counters were written when the cycle ended, before its
    # healings finished on the workers.
    cycle = HealingCycleFactory(healed=0, failed=0, pending=3)
    for status in ("SUCCESS", "SUCCESS", "FAILED", "IN_PROGRESS"):
        HealingActionFactory(cycle=cycle, recovery_status=status)
    HealingActionFactory(recovery_status="SUCCESS")  # another cycle's

    row = ops_api.get(f"{BASE}/cycles/{cycle.pk}").json()["cycle"]
    listed = ops_api.get(f"{BASE}/cycles").json()["results"][0]

    counts = {k: row[k] for k in ("healed", "failed", "skipped", "escalated", "pending")}
    assert counts == {"healed": 2, "failed": 1, "skipped": 0, "escalated": 0, "pending": 1}
    assert {k: listed[k] for k in counts} == counts


def test_rules_list(ops_api, rules):
    body = ops_api.get(f"{BASE}/rules").json()

    assert body["success"] is True and body["count"] == 4
    by_status = {rule["status"]: rule for rule in body["rules"]}
    assert by_status["PENDING"]["threshold_minutes"] == 30
    assert by_status["PENDING"]["ladder"] == ["REASSIGN_VENDOR", "REASSIGN_VENDOR", "CANCEL_ORDER"]
    assert by_status["PROCESSING"]["threshold_minutes"] == 180


# --- health ---------------------------------------------------------------------


def test_health_needs_no_token_and_checks_database_and_broker(settings):
    settings.CELERY_BROKER_URL = ""

    response = APIClient().get("/api/v1/health")

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "cycles"}
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["cycles"] == {"ok": True, "detail": "no cycle has run yet"}


def test_health_is_503_when_no_cycle_ran_for_three_intervals(settings):
    from datetime import timedelta

    from django.utils import timezone

    from healing.models import HealingCycle

    settings.CELERY_BROKER_URL = ""
    settings.HEALING_CYCLE_INTERVAL_SECONDS = 300
    from django_celery_beat.models import PeriodicTask

    PeriodicTask.objects.filter(task="healing.tasks.run_cycle").delete()  # use the setting
    cycle = HealingCycle.objects.create(
        started_at=timezone.now() - timedelta(seconds=899), trigger="BEAT", status="FINISHED"
    )
    assert APIClient().get("/api/v1/health").status_code == 200

    HealingCycle.objects.filter(pk=cycle.pk).update(
        started_at=timezone.now() - timedelta(seconds=901)
    )
    response = APIClient().get("/api/v1/health")

    assert response.status_code == 503
    assert "cycles" in response.json()["error"]["message"]
    assert response.json()["checks"]["cycles"]["ok"] is False


def test_health_ignores_a_bad_token():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer garbage")

    assert client.get("/api/v1/health").status_code == 200


def test_health_is_503_when_the_broker_does_not_answer(settings, monkeypatch):
    from kombu import Connection

    from config.celery import app

    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    monkeypatch.setattr(app, "connection_for_write", lambda: Connection(settings.CELERY_BROKER_URL))

    response = APIClient().get("/api/v1/health")

    assert response.status_code == 503
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "unhealthy"
    assert "broker" in body["error"]["message"]
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True


def test_health_is_503_when_the_database_does_not_answer(settings, monkeypatch):
    settings.CELERY_BROKER_URL = ""

    class DownConnection:
        vendor = "postgresql"

        def cursor(self):
            from django.db import OperationalError

            raise OperationalError("connection refused")

    monkeypatch.setattr("healing.apis_health.connection", DownConnection())

    response = APIClient().get("/api/v1/health")

    assert response.status_code == 503
    assert response.json()["checks"]["database"] == {
        "ok": False,
        "detail": "OperationalError: connection refused",
    }
