"""The daily roll-up: recomputed from rows, idempotent, equal to rebuild_metrics."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext

from healing import tasks
from healing.cycle import healing_cycle_run
from healing.execution import healing_execute, healing_initiate
from healing.models import HealingAction, HealingMetric
from healing.reports.rollup import metrics_rollup
from tests.factories import (
    AdminNotificationFactory,
    HealingCycleFactory,
    OrderFactory,
    VendorFactory,
)
from tests.healing.reports.metrics_data import NOW, mixed_healings

pytestmark = pytest.mark.django_db


@pytest.fixture
def at_now():
    with time_machine.travel(NOW, tick=False):
        yield NOW


def _rows() -> list[dict]:
    return [
        model_to_dict(m, exclude=["id", "updated_at"])
        for m in HealingMetric.objects.order_by("metric_date")
    ]


def test_rollup_of_the_fixture_day_by_day(at_now):
    mixed_healings()

    rows = {m.metric_date: m for m in metrics_rollup(days=7, now=NOW)}

    # One row per day of the window, plus 11-13: its healing #12 finished
    # (00:01 on 11-14) inside the window, so its day is recomputed too.
    assert sorted(rows) == [date(2026, 11, d) for d in range(13, 21)]
    assert rows[date(2026, 11, 13)].total_stuck_orders_detected == 1
    today = rows[date(2026, 11, 20)]
    assert today.total_stuck_orders_detected == 7
    assert (today.stuck_pending_detected, today.stuck_confirmed_detected) == (5, 1)
    assert (today.stuck_accepted_detected, today.stuck_processing_detected) == (0, 1)
    assert (today.successful_recoveries, today.failed_recoveries) == (3, 1)
    assert (today.skipped_recoveries, today.manual_interventions) == (1, 1)
    assert (today.reassign_vendor_count, today.retry_workflow_count) == (5, 1)
    assert (today.cancel_order_count, today.manual_intervention_count) == (0, 1)
    assert today.avg_recovery_time_seconds == pytest.approx(320.0)
    assert today.p50_recovery_time_seconds == pytest.approx(240.0)
    assert today.p95_recovery_time_seconds == pytest.approx(564.0)
    assert today.healing_success_rate == Decimal("60.00")  # 3 / (3 + 1 + 1)
    yesterday = rows[date(2026, 11, 19)]
    assert yesterday.total_stuck_orders_detected == 3
    assert yesterday.healing_success_rate == Decimal("33.33")
    empty = rows[date(2026, 11, 17)]
    assert empty.total_stuck_orders_detected == 0
    assert empty.healing_success_rate is None
    assert empty.avg_recovery_time_seconds is None
    assert not HealingMetric.objects.filter(metric_date=date(2026, 11, 12)).exists()


def test_rollup_is_idempotent_and_equals_rebuild_metrics(at_now):
    mixed_healings()
    AdminNotificationFactory(created_at=NOW - timedelta(hours=2))
    HealingCycleFactory(started_at=NOW - timedelta(hours=3), duration_ms=1500.0)
    HealingCycleFactory(started_at=NOW - timedelta(hours=1), duration_ms=250.0)

    metrics_rollup(days=7, now=NOW)
    metrics_rollup(days=7, now=NOW)
    rolled = _rows()
    HealingMetric.objects.all().delete()
    out = StringIO()
    call_command("rebuild_metrics", "--days", "7", stdout=out)

    assert _rows() == rolled
    assert HealingMetric.objects.count() == 8  # 7 days + 11-13 (a late finish)
    assert "Rebuilt 8 day(s)" in out.getvalue()
    today = HealingMetric.objects.get(metric_date=date(2026, 11, 20))
    assert today.notifications_raised == 1
    assert today.cycles_run == 2
    assert today.last_cycle_duration_seconds == pytest.approx(0.25)  # the latest cycle's


def test_rollup_reflects_changes_since_the_last_run(at_now):
    mixed = mixed_healings()
    metrics_rollup(days=1, now=NOW)
    in_progress = mixed.rows[6]

    HealingAction.objects.filter(pk=in_progress.pk).update(
        recovery_status="SUCCESS", completed_at=NOW, claim_token=None, lease_expires_at=None
    )
    (today,) = [m for m in metrics_rollup(days=1, now=NOW) if m.metric_date == NOW.date()]

    assert today.successful_recoveries == 4
    assert today.healing_success_rate == Decimal("66.67")
    assert HealingMetric.objects.filter(metric_date=NOW.date()).count() == 1


def test_a_healing_finished_after_midnight_updates_the_day_it_was_detected():
    with time_machine.travel(NOW, tick=False):
        mixed_healings()  # #8: detected 11-19 23:59, completed 11-20 00:01

    rows = metrics_rollup(days=1, now=NOW)

    assert [m.metric_date for m in rows] == [date(2026, 11, 19), date(2026, 11, 20)]
    assert rows[0].successful_recoveries == 1


def test_snapshot_of_stuck_orders_goes_into_todays_row_only(at_now):
    OrderFactory(status="PENDING", stuck_minutes=45)
    OrderFactory(status="PROCESSING", stuck_minutes=500)
    OrderFactory(status="PENDING", stuck_minutes=5)

    rows = {m.metric_date: m for m in metrics_rollup(days=2, now=NOW)}

    assert (rows[NOW.date()].orders_stuck_now, rows[NOW.date()].oldest_stuck_minutes) == (2, 500)
    assert rows[date(2026, 11, 19)].orders_stuck_now is None


def test_a_past_days_snapshot_is_kept_by_a_later_rebuild(at_now):
    HealingMetric.objects.create(
        metric_date=date(2026, 11, 19), orders_stuck_now=12, oldest_stuck_minutes=99
    )

    metrics_rollup(days=2, now=NOW)

    kept = HealingMetric.objects.get(metric_date=date(2026, 11, 19))
    assert (kept.orders_stuck_now, kept.oldest_stuck_minutes) == (12, 99)


def test_rebuild_metrics_rejects_zero_days():
    with pytest.raises(CommandError):
        call_command("rebuild_metrics", "--days", "0")
    with pytest.raises(ValueError):
        metrics_rollup(days=0)


def test_celery_task_rolls_up_today(at_now):
    mixed_healings()

    result = tasks.metrics_rollup.apply()

    assert result.successful()
    today = HealingMetric.objects.get(metric_date=NOW.date())
    assert today.total_stuck_orders_detected == 7
    assert tasks.metrics_rollup.name == "healing.tasks.metrics_rollup"  # beat's schedule name


@pytest.mark.django_db(transaction=True)
def test_the_healing_transaction_never_touches_healing_metrics():
    VendorFactory(acceptance_rate=0.5)
    order = OrderFactory(status="PENDING", stuck_minutes=45)
    healing = healing_initiate(order=order, trigger="CLI")

    with CaptureQueriesContext(connection) as queries:
        outcome = healing_execute(healing_id=healing.pk, token=healing.claim_token)

    assert outcome.status == "SUCCESS"
    assert queries.captured_queries
    assert not [q for q in queries.captured_queries if "healing_metrics" in q["sql"]]


@pytest.mark.django_db(transaction=True)
def test_a_cycle_ends_with_a_rollup_equal_to_rebuild_metrics():
    # A mixed set of real healings: two succeed, one cannot be reassigned
    # (no other vendor has room), one escalates after its ladder ran out.
    VendorFactory(acceptance_rate=0.5)
    OrderFactory(status="PENDING", stuck_minutes=45)
    OrderFactory(status="CONFIRMED", stuck_minutes=61)
    escalated = OrderFactory(status="PROCESSING", stuck_minutes=400)
    for _ in range(2):
        HealingAction.objects.create(
            order=escalated,
            issue_type="STUCK_PROCESSING",
            issue_detected_at=escalated.stuck_since,
            detected_status="PROCESSING",
            episode_started_at=escalated.stuck_since - timedelta(hours=1),
            recovery_action="RETRY_WORKFLOW",
            recovery_status="FAILED",
            completed_at=escalated.stuck_since,
            created_at=escalated.stuck_since,
            updated_at=escalated.stuck_since,
        )

    result = healing_cycle_run(trigger="CLI")

    assert result.ran
    today = datetime.now(tz=UTC).date()
    after_cycle = _rows()
    row = HealingMetric.objects.get(metric_date=today)
    statuses = sorted(
        HealingAction.objects.filter(cycle_id=result.cycle_id).values_list(
            "recovery_status", flat=True
        )
    )
    assert statuses == ["MANUAL_REQUIRED", "SUCCESS", "SUCCESS"]
    assert row.successful_recoveries == 2
    assert row.manual_interventions == 1
    assert row.cycles_run == 1
    assert row.last_cycle_duration_seconds is not None
    HealingMetric.objects.all().delete()
    call_command("rebuild_metrics", stdout=StringIO())
    assert _rows() == after_cycle


def test_rollup_uses_a_bounded_number_of_queries(at_now, django_assert_max_num_queries):
    mixed_healings()
    with django_assert_max_num_queries(20):
        metrics_rollup(days=1, now=NOW)


@pytest.mark.django_db(transaction=True)
def test_a_failing_rollup_never_fails_the_cycle(monkeypatch, caplog):
    def broken(**kwargs):
        raise RuntimeError("metrics table locked")

    monkeypatch.setattr("healing.reports.rollup.metrics_rollup", broken)
    OrderFactory(status="CONFIRMED", stuck_minutes=61)

    result = healing_cycle_run(trigger="CLI")

    assert result.ran and result.healed == 1
    assert "metrics roll-up after the cycle failed" in caplog.text
    assert not HealingMetric.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_rollups_leave_one_row_per_day():
    import threading

    with time_machine.travel(NOW, tick=False):
        mixed_healings()
    barrier = threading.Barrier(4)
    errors = []

    def roll():
        try:
            barrier.wait(timeout=10)
            metrics_rollup(days=7, now=NOW)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=roll) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert HealingMetric.objects.count() == 8
    assert HealingMetric.objects.get(metric_date=NOW.date()).total_stuck_orders_detected == 7
