"""The seed's SQL runs unchanged on PostgreSQL; the views and functions behave."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from healing.cycle import healing_cycle_run
from healing.detection import stuck_orders_detect
from healing.models import HealingAction, StuckRule
from healing.reports.rollup import metrics_rollup
from healing.reports.statistics import statistics_daily
from orders.models import Order, OrderStatusChange
from tests.factories import HealingActionFactory, OrderFactory, VendorFactory
from tests.healing.reports.metrics_data import NOW, mixed_healings

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

# Verbatim from seed/self-healing-system.md: "Monitoring & Metrics" and
# "Troubleshooting", then the two calls of "Functions Created".
SEED_MONITORING_SQL = [
    """SELECT * FROM stuck_orders_view
ORDER BY stuck_minutes DESC;""",
    """SELECT * FROM healing_actions
WHERE recovery_status = 'IN_PROGRESS'
ORDER BY recovery_attempted_at DESC;""",
    """SELECT * FROM healing_actions
WHERE recovery_status = 'FAILED'
AND issue_detected_at >= NOW() - INTERVAL '24 hours'
ORDER BY issue_detected_at DESC;""",
    """SELECT * FROM healing_metrics
WHERE metric_date = CURRENT_DATE;""",
    (  # "SELECT " keeps the seed's trailing space
        "SELECT \n"
        "  metric_date,\n"
        "  total_stuck_orders_detected,\n"
        "  successful_recoveries,\n"
        "  healing_success_rate\n"
        "FROM healing_metrics\n"
        "WHERE metric_date >= CURRENT_DATE - INTERVAL '7 days'\n"
        "ORDER BY metric_date DESC;"
    ),
]
SEED_TROUBLESHOOTING_SQL = [
    "SELECT * FROM stuck_orders_view;",
    """SELECT * FROM healing_actions
ORDER BY created_at DESC LIMIT 10;""",
]
SEED_FILE = Path("/work/shared/seed/self-healing-system.md")


def _fetch(sql: str, params=None) -> tuple[list[str], list[tuple]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [c.name for c in cursor.description], cursor.fetchall()


def _dicts(sql: str, params=None) -> list[dict]:
    columns, rows = _fetch(sql, params)
    return [dict(zip(columns, row, strict=True)) for row in rows]


@pytest.fixture
def some_state():
    VendorFactory(acceptance_rate=0.5)
    stuck = OrderFactory(status="PENDING", stuck_minutes=45)
    HealingActionFactory(
        order=OrderFactory(status="CONFIRMED", stuck_minutes=70),
        issue_type="STUCK_CONFIRMED",
        recovery_action="RETRY_WORKFLOW",
        recovery_status="IN_PROGRESS",
        recovery_attempted_at=timezone.now(),
    )
    HealingActionFactory(
        order=OrderFactory(status="ACCEPTED", stuck_minutes=200),
        issue_type="STUCK_ACCEPTED",
        recovery_status="FAILED",
        claim_token=None,
        lease_expires_at=None,
        completed_at=timezone.now(),
        admin_notified=True,
    )
    metrics_rollup(days=7)
    return stuck


@pytest.mark.parametrize("sql", SEED_MONITORING_SQL + SEED_TROUBLESHOOTING_SQL)
def test_seed_sql_runs_unchanged(some_state, sql):
    columns, rows = _fetch(sql)
    assert columns


def test_seed_sql_returns_what_an_operator_expects(some_state):
    stuck = _dicts(SEED_MONITORING_SQL[0])
    in_progress = _dicts(SEED_MONITORING_SQL[1])
    failures = _dicts(SEED_MONITORING_SQL[2])
    today = _dicts(SEED_MONITORING_SQL[3])
    week = _dicts(SEED_MONITORING_SQL[4])

    assert [r["stuck_minutes"] for r in stuck] == sorted(
        (r["stuck_minutes"] for r in stuck), reverse=True
    )
    assert {r["order_id"] for r in stuck} >= {some_state.pk}
    assert {r["issue_type"] for r in stuck} == {
        "STUCK_PENDING",
        "STUCK_CONFIRMED",
        "STUCK_ACCEPTED",
    }
    assert [r["recovery_status"] for r in in_progress] == ["IN_PROGRESS"]
    assert [r["recovery_status"] for r in failures] == ["FAILED"]
    assert len(today) == 1 and today[0]["failed_recoveries"] == 1
    assert len(week) == 7
    assert set(week[0]) == {
        "metric_date",
        "total_stuck_orders_detected",
        "successful_recoveries",
        "healing_success_rate",
    }


def test_every_sql_block_of_the_seed_sections_is_covered():
    if not SEED_FILE.exists():
        pytest.skip("the seed document is not on this machine")
    text = SEED_FILE.read_text()
    sections = text[text.index("## 📊 Monitoring & Metrics") : text.index("### Key Performance")]
    sections += text[text.index("## 🚨 Troubleshooting") : text.index("## 📈 Performance")]
    blocks = re.findall(r"```sql\n(.*?)```", sections, flags=re.S)
    statements = [
        "\n".join(line.strip() for line in b.strip().splitlines())
        for b in blocks
        if not b.strip().startswith("--")
    ]
    ours = ["\n".join(line.strip() for line in s.splitlines()) for s in SEED_MONITORING_SQL]
    ours += ["\n".join(line.strip() for line in s.splitlines()) for s in SEED_TROUBLESHOOTING_SQL]
    assert statements == ours


def test_seed_function_calls_run_as_written():
    # The seed's literal call names order 123: make the next order get that id.
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval(pg_get_serial_sequence('orders', 'id'), 122, true)")
    order = OrderFactory(status="PENDING", stuck_minutes=45)
    assert order.pk == 123

    detected = _dicts("SELECT * FROM detect_stuck_orders();")
    ((healing_id,),) = _fetch("SELECT auto_heal_order(123, 'STUCK_PENDING', 'REASSIGN_VENDOR');")[1]

    assert [(r["order_id"], r["recommended_action"]) for r in detected] == [
        (123, "REASSIGN_VENDOR")
    ]
    assert HealingAction.objects.get(pk=healing_id).order_id == 123


def test_stuck_orders_view_reads_thresholds_from_the_rules():
    # The database's now(): real time, so no time travel here.
    order = OrderFactory(status="PENDING", stuck_minutes=45)

    assert [r["order_id"] for r in _dicts("SELECT * FROM stuck_orders_view")] == [order.pk]
    assert _dicts("SELECT * FROM stuck_orders_view")[0]["threshold_minutes"] == 30
    StuckRule.objects.filter(status="PENDING").update(threshold_minutes=60)
    assert _dicts("SELECT * FROM stuck_orders_view") == []
    StuckRule.objects.filter(status="PENDING").update(threshold_minutes=40, enabled=False)
    assert _dicts("SELECT * FROM stuck_orders_view") == []
    StuckRule.objects.filter(status="PENDING").update(enabled=True)
    assert len(_dicts("SELECT * FROM stuck_orders_view")) == 1


def test_detect_stuck_orders_agrees_with_the_engine():
    VendorFactory()
    plain = OrderFactory(status="PENDING", stuck_minutes=45)
    OrderFactory(status="PENDING", stuck_minutes=10)  # not stuck yet
    being_healed = OrderFactory(status="CONFIRMED", stuck_minutes=90)
    HealingActionFactory(order=being_healed, issue_type="STUCK_CONFIRMED")
    lost = OrderFactory(status="ACCEPTED", stuck_minutes=130)
    lost_healing = HealingActionFactory(
        order=lost,
        issue_type="STUCK_ACCEPTED",
        lease_expires_at=timezone.now() - timedelta(minutes=1),
    )
    retried = OrderFactory(status="PROCESSING", stuck_minutes=400)
    for _ in range(2):  # two earlier attempts: the ladder's third step
        HealingActionFactory(
            order=retried,
            issue_type="STUCK_PROCESSING",
            recovery_action="RETRY_WORKFLOW",
            recovery_status="FAILED",
            claim_token=None,
            lease_expires_at=None,
        )
    held = OrderFactory(status="PENDING", stuck_minutes=300)
    HealingActionFactory(
        order=held,
        recovery_action="MANUAL_INTERVENTION",
        recovery_status="MANUAL_REQUIRED",
        claim_token=None,
        lease_expires_at=None,
    )

    sql = _dicts("SELECT * FROM detect_stuck_orders()")
    engine = stuck_orders_detect()

    assert sorted(
        (r["order_id"], r["issue_type"], r["attempts"], r["recommended_action"]) for r in sql
    ) == sorted((s.order_id, s.issue_type, s.attempts, s.recommended_action) for s in engine)
    by_order = {r["order_id"]: r for r in sql}
    assert set(by_order) == {plain.pk, lost.pk, retried.pk}
    assert by_order[lost.pk]["redispatch_healing_id"] == lost_healing.pk
    assert by_order[retried.pk]["recommended_action"] == "MANUAL_INTERVENTION"
    view = {r["order_id"]: r for r in _dicts("SELECT * FROM stuck_orders_view")}
    assert view[being_healed.pk]["active_healing_count"] == 1
    assert view[retried.pk]["total_healing_attempts"] == 2
    assert view[held.pk]["on_manual_hold"] is True


def test_healing_statistics_view_matches_the_statistics_selector():
    with time_machine.travel(NOW, tick=False):
        mixed_healings()
        python = statistics_daily(days=7, now=NOW)
        sql = _dicts(
            "SELECT * FROM healing_statistics_view WHERE date >= %s ORDER BY date DESC, "
            "issue_type, recovery_action, recovery_status",
            [NOW.date() - timedelta(days=6)],
        )

    assert len(sql) == len(python) == 8  # one row per status (issue 20 item 5)
    for s, p in zip(sql, python, strict=True):
        converted = {
            k: (
                v.isoformat()
                if k == "date"
                else float(v)
                if v is not None and k.endswith(("minutes", "rate"))
                else v
            )
            for k, v in s.items()
        }
        assert converted == p


def test_auto_heal_order_records_a_pending_healing_and_changes_no_order():
    order = OrderFactory(status="PENDING", stuck_minutes=45)
    history = OrderStatusChange.objects.filter(order=order).count()

    (healing_id,) = _fetch(
        "SELECT auto_heal_order(%s, 'STUCK_PENDING', 'REASSIGN_VENDOR')", [order.pk]
    )[1][0]
    (again,) = _fetch("SELECT auto_heal_order(%s, 'STUCK_PENDING', 'CANCEL_ORDER')", [order.pk])[1][
        0
    ]

    healing = HealingAction.objects.get(pk=healing_id)
    assert again == healing_id  # one active healing per order: the existing one
    assert healing.recovery_status == "PENDING"
    assert healing.recovery_action == "REASSIGN_VENDOR"
    assert healing.trigger == "SQL"
    assert healing.claim_token is not None
    assert healing.lease_expires_at < timezone.now()  # due for the next cycle
    assert healing.detected_status == "PENDING"
    assert healing.episode_started_at == order.stuck_since
    assert healing.attempt_number == 1
    assert healing.previous_vendor_id == order.vendor_id
    fresh = Order.objects.get(pk=order.pk)
    assert (fresh.status, fresh.stuck_since, fresh.vendor_id) == (
        order.status,
        order.stuck_since,
        order.vendor_id,
    )
    assert OrderStatusChange.objects.filter(order=order).count() == history


@pytest.mark.parametrize(
    ("status", "issue_type", "action", "message"),
    [
        ("PENDING", "STUCK_CONFIRMED", "REASSIGN_VENDOR", "its issue type is STUCK_PENDING"),
        ("PENDING", "STUCK_PENDING", "REBOOT", "unknown recovery action"),
        ("PROCESSING", "STUCK_PROCESSING", "REASSIGN_VENDOR", "never reassigned"),
        ("DELIVERED", "STUCK_PENDING", "CANCEL_ORDER", "nothing to heal"),
    ],
)
def test_auto_heal_order_refuses_what_makes_no_sense(status, issue_type, action, message):
    order = OrderFactory(status=status, stuck_minutes=500)
    with pytest.raises(DatabaseError, match=message), transaction.atomic():
        _fetch("SELECT auto_heal_order(%s, %s, %s)", [order.pk, issue_type, action])
    assert not HealingAction.objects.filter(order=order).exists()


def test_auto_heal_order_refuses_an_unknown_order():
    with pytest.raises(DatabaseError, match="does not exist"), transaction.atomic():
        _fetch("SELECT auto_heal_order(987654321, 'STUCK_PENDING', 'REASSIGN_VENDOR')")


@pytest.mark.django_db(transaction=True)
def test_auto_heal_order_leads_to_a_healing_on_the_next_cycle():
    VendorFactory(acceptance_rate=0.5)
    order = OrderFactory(status="PENDING", stuck_minutes=45)
    (healing_id,) = _fetch(
        "SELECT auto_heal_order(%s, 'STUCK_PENDING', 'REASSIGN_VENDOR')", [order.pk]
    )[1][0]

    result = healing_cycle_run(trigger="CLI")

    healing = HealingAction.objects.get(pk=healing_id)
    assert result.redispatched == 1
    assert healing.recovery_status == "SUCCESS"
    assert healing.new_vendor_id not in (None, order.vendor_id)
    assert HealingAction.objects.filter(order=order).count() == 1  # re-dispatched, not re-created
    assert Order.objects.get(pk=order.pk).vendor_id == healing.new_vendor_id


@pytest.mark.django_db(transaction=True)
def test_auto_heal_order_under_its_threshold_is_healed_on_the_next_cycle():
    # An operator may heal an order before its threshold; the cycle picks up
    # every expired lease, not only those of orders past their threshold.
    VendorFactory(acceptance_rate=0.5)
    order = OrderFactory(status="PENDING", stuck_minutes=5)
    (healing_id,) = _fetch(
        "SELECT auto_heal_order(%s, 'STUCK_PENDING', 'REASSIGN_VENDOR')", [order.pk]
    )[1][0]

    healing_cycle_run(trigger="CLI")

    assert HealingAction.objects.get(pk=healing_id).recovery_status == "SUCCESS"


def test_views_do_not_block_later_column_changes():
    with transaction.atomic():
        sid = transaction.savepoint()
        with connection.cursor() as cursor:
            cursor.execute(
                "ALTER TABLE healing_actions ALTER COLUMN recovery_action TYPE varchar(64)"
            )
            cursor.execute("ALTER TABLE orders ALTER COLUMN number TYPE varchar(40)")
            cursor.execute("ALTER TABLE healing_stuck_rules ALTER COLUMN status TYPE varchar(20)")
            cursor.execute("ALTER TABLE healing_actions DROP COLUMN retry_count")
            # The objects still answer after a type change.
            cursor.execute("SELECT count(*) FROM stuck_orders_view")
        transaction.savepoint_rollback(sid)


def test_migration_created_the_objects():
    names = {
        row[0]
        for row in _fetch(
            "SELECT viewname FROM pg_views WHERE viewname IN "
            "('stuck_orders_view', 'healing_statistics_view') "
            "UNION SELECT proname FROM pg_proc WHERE proname IN "
            "('detect_stuck_orders', 'auto_heal_order')"
        )[1]
    }
    assert names == {
        "stuck_orders_view",
        "healing_statistics_view",
        "detect_stuck_orders",
        "auto_heal_order",
    }
