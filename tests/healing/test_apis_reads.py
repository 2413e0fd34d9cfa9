"""The healing API's read endpoints: stuck-orders and statistics (the seed's
response bodies key for key), kpis, healing-actions, cycles and rules."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from healing.models import HealingAction
from tests.factories import HealingActionFactory, HealingCycleFactory, OrderFactory
from tests.healing.api_helpers import BASE, HEALING_KEYS

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("api_defaults")]

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
