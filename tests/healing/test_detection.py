from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from healing.detection import stuck_orders_detect
from healing.execution import manual_intervention_resolve
from healing.models import RecoveryStatus, StuckRule
from tests.factories import HealingActionFactory, OrderFactory

pytestmark = pytest.mark.django_db


def detected_ids() -> set[int]:
    return {row.order_id for row in stuck_orders_detect()}


@pytest.mark.parametrize(
    ("status", "threshold", "issue", "action"),
    [
        ("PENDING", 30, "STUCK_PENDING", "REASSIGN_VENDOR"),
        ("CONFIRMED", 60, "STUCK_CONFIRMED", "RETRY_WORKFLOW"),
        ("ACCEPTED", 120, "STUCK_ACCEPTED", "REASSIGN_VENDOR"),
        ("PROCESSING", 180, "STUCK_PROCESSING", "RETRY_WORKFLOW"),
    ],
)
def test_an_order_is_stuck_only_past_its_status_threshold(status, threshold, issue, action):
    under = OrderFactory(status=status, stuck_minutes=threshold - 1)
    over = OrderFactory(status=status, stuck_minutes=threshold + 1)

    rows = stuck_orders_detect()

    assert [row.order_id for row in rows] == [over.pk]
    row = rows[0]
    assert (row.issue_type, row.recommended_action, row.attempts) == (issue, action, 0)
    assert row.stuck_minutes == threshold + 1
    assert under.pk not in detected_ids()


@pytest.mark.parametrize("status", ["SHIPPED", "DELIVERED", "CANCELLED"])
def test_shipped_and_finished_orders_are_never_stuck(status):
    OrderFactory(status=status, stuck_minutes=10_000)
    assert detected_ids() == set()


def test_orders_with_a_live_active_healing_are_excluded_and_expired_ones_redispatched():
    busy = OrderFactory(status="CONFIRMED", stuck_minutes=90)
    lost = OrderFactory(status="CONFIRMED", stuck_minutes=90)
    HealingActionFactory(order=busy, recovery_status=RecoveryStatus.IN_PROGRESS)
    expired = HealingActionFactory(
        order=lost,
        recovery_status=RecoveryStatus.IN_PROGRESS,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )

    rows = {row.order_id: row for row in stuck_orders_detect()}

    assert busy.pk not in rows
    assert rows[lost.pk].expired_healing_id == expired.pk
    assert rows[lost.pk].active_healing_count == 1


def test_recommended_action_climbs_the_ladder_with_attempts():
    order = OrderFactory(status="PENDING", stuck_minutes=40)
    for status in ("FAILED", "SKIPPED", "SUCCESS"):
        HealingActionFactory(
            order=order, recovery_status=status, skip_reason="GUARD" if status == "SKIPPED" else ""
        )

    (row,) = stuck_orders_detect()

    # SKIPPED does not count: two attempts, so the third rung.
    assert row.attempts == 2
    assert row.recommended_action == "CANCEL_ORDER"


def test_past_the_end_of_the_ladder_is_manual_intervention():
    order = OrderFactory(status="CONFIRMED", stuck_minutes=70)
    HealingActionFactory.create_batch(2, order=order, recovery_status="FAILED")
    (row,) = stuck_orders_detect()
    assert row.recommended_action == "MANUAL_INTERVENTION"


def test_manual_hold_excludes_the_order_until_resolved_then_attempts_restart():
    order = OrderFactory(status="ACCEPTED", stuck_minutes=200)
    HealingActionFactory.create_batch(2, order=order, recovery_status="FAILED")
    HealingActionFactory(order=order, recovery_status="MANUAL_REQUIRED")
    assert detected_ids() == set()

    assert manual_intervention_resolve(order_id=order.pk) == 1

    (row,) = stuck_orders_detect()
    assert (row.attempts, row.recommended_action) == (0, "REASSIGN_VENDOR")


def test_disabled_rules_detect_nothing_and_thresholds_come_from_the_database():
    order = OrderFactory(status="CONFIRMED", stuck_minutes=20)
    assert detected_ids() == set()
    StuckRule.objects.filter(status="CONFIRMED").update(threshold_minutes=15)
    assert detected_ids() == {order.pk}
    StuckRule.objects.filter(status="CONFIRMED").update(enabled=False)
    assert detected_ids() == set()


def test_limit_bounds_the_result():
    OrderFactory.create_batch(3, status="PENDING", stuck_minutes=31)
    assert len(stuck_orders_detect(limit=2)) == 2


@pytest.mark.postgres
def test_detection_plan_uses_the_partial_index_and_never_scans_orders():
    from healing.detection import orders_past_threshold

    OrderFactory.create_batch(3, status="PENDING", stuck_minutes=31)
    rule = StuckRule.objects.get(status="PENDING")
    sql, params = orders_past_threshold(rule=rule, now=timezone.now()).query.sql_with_params()
    with connection.cursor() as cursor:
        # Small test tables would make a sequential scan cheapest; forbid it
        # to see which index the planner reaches for.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "orders_open_stuck_idx" in plan, plan
    assert "Seq Scan on orders" not in plan, plan


@pytest.mark.parametrize("microsecond", [0, 1, 123456, 999999])
def test_detection_reports_each_clock_to_the_microsecond(microsecond):
    """Detection reads clocks as integer microseconds (issue 15); the
    reported clock is the stored one exactly — the heal's compare-and-set on
    the episode's clock depends on it — with and without a fraction."""
    stuck_since = (timezone.now() - timedelta(hours=5)).replace(microsecond=microsecond)
    order = OrderFactory(status="PENDING", stuck_minutes=300)
    order.stuck_since = stuck_since
    order.save(update_fields=["stuck_since"])
    order.refresh_from_db()

    (row,) = stuck_orders_detect()

    assert row.stuck_since == order.stuck_since == stuck_since
    assert row.stuck_since.utcoffset() == timedelta(0)


def test_detection_lists_orders_oldest_clock_first_within_a_rule():
    now = timezone.now()
    newer = OrderFactory(status="PENDING", stuck_minutes=40)
    oldest = OrderFactory(status="PENDING", stuck_minutes=90)
    tie_a, tie_b = (OrderFactory(status="PENDING", stuck_minutes=60) for _ in range(2))
    tie_b.stuck_since = tie_a.stuck_since  # a tie on the clock is broken by id
    tie_b.save(update_fields=["stuck_since"])

    rows = stuck_orders_detect(now=now)

    assert [row.order_id for row in rows] == [oldest.pk, tie_a.pk, tie_b.pk, newer.pk]


def test_each_order_is_judged_by_its_own_healings_when_many_orders_have_history():
    """Detection reads every rule's candidates and their healings as one
    stream of joined rows (issue 15): an order's rows must not leak into its
    neighbours', whatever their clocks and however many healings each has."""
    now = timezone.now()
    lease_ran_out = now - timedelta(seconds=1)
    plain = OrderFactory(status="PENDING", stuck_minutes=95)
    twice_failed = OrderFactory(status="PENDING", stuck_minutes=90)
    HealingActionFactory.create_batch(2, order=twice_failed, recovery_status="FAILED")
    held = OrderFactory(status="PENDING", stuck_minutes=85)
    HealingActionFactory(order=held, recovery_status="FAILED")
    HealingActionFactory(order=held, recovery_status="MANUAL_REQUIRED")
    lost = OrderFactory(status="PENDING", stuck_minutes=80)
    HealingActionFactory(order=lost, recovery_status="FAILED")
    HealingActionFactory(order=lost, recovery_status="SKIPPED", skip_reason="GUARD")
    expired = HealingActionFactory(
        order=lost, recovery_status="IN_PROGRESS", lease_expires_at=lease_ran_out
    )
    busy = OrderFactory(status="PENDING", stuck_minutes=75)
    HealingActionFactory(order=busy, recovery_status="IN_PROGRESS")
    confirmed = OrderFactory(status="CONFIRMED", stuck_minutes=70)
    HealingActionFactory(order=confirmed, recovery_status="SUCCESS")

    rows = stuck_orders_detect(now=now)

    assert [
        (row.order_id, row.attempts, row.recommended_action, row.expired_healing_id) for row in rows
    ] == [
        (plain.pk, 0, "REASSIGN_VENDOR", None),
        (twice_failed.pk, 2, "CANCEL_ORDER", None),
        (lost.pk, 1, "REASSIGN_VENDOR", expired.pk),
        (confirmed.pk, 1, "RETRY_WORKFLOW", None),
    ]


@pytest.mark.postgres
def test_detection_probes_healings_by_order_and_leaves_the_callers_settings_alone():
    """Whatever the planner estimates, each candidate's healings are an index
    probe (a hash join reads the whole history), and the settings that make
    it so end with detection's statement, inside a caller's transaction too."""
    from healing.detection import _candidates, _index_driven_plan

    OrderFactory(status="PENDING", stuck_minutes=31)
    names = ("enable_hashjoin", "enable_mergejoin", "max_parallel_workers_per_gather")

    def settings() -> tuple[str, ...]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT " + ", ".join(["current_setting(%s)"] * len(names)), names)
            return cursor.fetchone()

    before = settings()
    queryset = _candidates(rules=list(StuckRule.objects.all()), now=timezone.now())
    with _index_driven_plan():
        plan = queryset.explain()
    stuck_orders_detect()

    assert "Nested Loop Left Join" in plan and "Hash" not in plan and "Gather" not in plan, plan
    assert settings() == before
