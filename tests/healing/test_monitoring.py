"""Healing monitoring (every minute): system alerts once per condition, early
warnings, and the auto-resolution of notifications whose order recovered."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from healing.cycle import healing_cycle_run
from healing.detection import order_on_manual_hold
from healing.models import RecoveryStatus
from healing.monitoring import monitoring_run
from notifications.models import AdminNotification
from orders import services as order_services
from tests.audit import audit_rows_delete
from tests.factories import (
    AdminNotificationFactory,
    HealingActionFactory,
    HealingCycleFactory,
    OrderFactory,
    VendorFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def sweep(quiet_channels, django_capture_on_commit_callbacks):
    """Run the monitoring pass and the deliveries it schedules after commit."""

    def run(now=None):
        with django_capture_on_commit_callbacks(execute=True):
            return monitoring_run(now=now)

    return run


def _completed(status: str, count: int, *, minutes_ago: int = 5) -> None:
    at = timezone.now() - timedelta(minutes=minutes_ago)
    for _ in range(count):
        HealingActionFactory(
            recovery_status=status,
            claim_token=None,
            lease_expires_at=None,
            completed_at=at,
            skip_reason="RECOVERED" if status == "SKIPPED" else "",
            error_message="gateway down" if status == "FAILED" else "",
        )


def _open(key: str) -> list[AdminNotification]:
    return list(AdminNotification.objects.filter(dedup_key=key, resolved_at__isnull=True))


# --- Failure rate -------------------------------------------------------------------------


def test_failure_rate_alert_fires_once_per_condition_and_resolves_when_it_clears(sweep, settings):
    settings.NOTIFICATION_FAILURE_RATE_THRESHOLD = 0.2
    settings.NOTIFICATION_FAILURE_RATE_MIN_HEALINGS = 10
    _completed("SUCCESS", 7)
    _completed("FAILED", 2)
    _completed("MANUAL_REQUIRED", 1)  # 3 of 10 = 30 %

    first = sweep()
    second = sweep()

    (alert,) = _open("failure_rate")
    assert alert.severity == "CRITICAL" and alert.notification_type == "SYSTEM_ALERT"
    assert alert.details["failed"] == 3 and alert.details["total"] == 10
    assert "30%" in alert.title
    assert first.raised == ["failure_rate"] and second.raised == []
    assert alert.occurrences == 2
    assert len(mail.outbox) == 1  # delivered once, not every minute
    assert _open("failure_rate_warning") == []  # superseded by the alert

    _completed("SUCCESS", 10)  # 3 of 20 = 15 %: below 20 %, above the 10 % warning
    sweep()
    assert _open("failure_rate") == []
    assert AdminNotification.objects.get(dedup_key="failure_rate").resolution_note == (
        "condition cleared"
    )
    (warning,) = _open("failure_rate_warning")
    assert warning.severity == "MEDIUM"

    _completed("SUCCESS", 20)  # 3 of 40 = 7.5 %
    sweep()
    assert _open("failure_rate_warning") == []

    _completed("FAILED", 40)  # a new episode: a new alert
    sweep()
    assert len(_open("failure_rate")) == 1
    assert AdminNotification.objects.filter(dedup_key="failure_rate").count() == 2


def test_failure_rate_needs_enough_healings_and_ignores_old_ones(sweep, settings):
    settings.NOTIFICATION_FAILURE_RATE_MIN_HEALINGS = 10
    settings.NOTIFICATION_FAILURE_RATE_WINDOW_MINUTES = 60
    _completed("FAILED", 3)  # 100 %, but only 3 healings
    _completed("FAILED", 20, minutes_ago=90)  # outside the window
    _completed("SKIPPED", 20)  # SKIPPED is not an attempt

    sweep()

    assert AdminNotification.objects.count() == 0


# --- Beat down / cycle late -----------------------------------------------------------


def test_no_cycle_for_three_intervals_raises_beat_down_once_then_clears(sweep, settings):
    settings.HEALING_CYCLE_INTERVAL_SECONDS = 300
    PeriodicTask.objects.filter(task="healing.tasks.run_cycle").delete()
    HealingCycleFactory(started_at=timezone.now() - timedelta(minutes=16))

    sweep()
    sweep()

    (alert,) = _open("beat_down")
    assert alert.severity == "CRITICAL" and alert.occurrences == 2
    assert alert.details["minutes_since_last_cycle"] >= 16
    assert _open("cycle_late") == []  # the early warning is superseded
    assert len(mail.outbox) == 1

    HealingCycleFactory(started_at=timezone.now())
    sweep()
    assert _open("beat_down") == []


def test_a_cycle_late_by_two_intervals_is_a_medium_early_warning(sweep, settings):
    settings.HEALING_CYCLE_INTERVAL_SECONDS = 300
    PeriodicTask.objects.filter(task="healing.tasks.run_cycle").delete()
    HealingCycleFactory(started_at=timezone.now() - timedelta(minutes=11))

    sweep()

    (warning,) = _open("cycle_late")
    assert warning.severity == "MEDIUM"
    assert _open("beat_down") == []


def test_the_interval_is_read_from_beats_schedule(sweep, settings):
    settings.HEALING_CYCLE_INTERVAL_SECONDS = 300
    every_ten, _ = IntervalSchedule.objects.get_or_create(every=10, period="minutes")
    PeriodicTask.objects.update_or_create(
        name="self-healing cycle",
        defaults={"task": "healing.tasks.run_cycle", "interval": every_ten, "enabled": True},
    )
    HealingCycleFactory(started_at=timezone.now() - timedelta(minutes=16))

    sweep()

    assert AdminNotification.objects.count() == 0  # 16 min is under two 10-min intervals


def test_a_fresh_install_without_cycles_is_not_an_outage(sweep):
    sweep()
    assert AdminNotification.objects.count() == 0


# --- Vendor timeouts (LOW) ------------------------------------------------------------------


def test_a_vendor_with_repeated_timeouts_today_gets_a_low_warning(sweep, settings):
    settings.NOTIFICATION_VENDOR_TIMEOUTS_PER_DAY = 3
    now = timezone.now().replace(hour=12)
    slow, fine = VendorFactory(name="Slow Parts"), VendorFactory()
    for vendor, count in ((slow, 3), (fine, 2)):
        for _ in range(count):
            HealingActionFactory(
                previous_vendor=vendor,
                issue_detected_at=now - timedelta(hours=1),
                recovery_status="SUCCESS",
                claim_token=None,
                lease_expires_at=None,
            )

    sweep(now=now)
    sweep(now=now)

    key = f"vendor_timeouts:{slow.pk}:{now.date().isoformat()}"
    (warning,) = AdminNotification.objects.filter(dedup_key__startswith="vendor_timeouts:")
    assert warning.dedup_key == key and warning.severity == "LOW"
    assert "Slow Parts" in warning.title and warning.details["timeouts"] == 3
    assert mail.outbox == []  # LOW stays on the dashboard

    sweep(now=now + timedelta(days=1))
    warning.refresh_from_db()
    assert warning.resolved_at is not None


# --- Guard (raised by the cycle itself) -------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_guard_alert_fires_once_while_tripped_and_resolves(
    quiet_channels, stuck_rules, settings
):
    settings.HEALING_GUARD_MIN_STUCK = 2
    settings.HEALING_GUARD_MAX_SHARE = 0.5
    VendorFactory()
    for _ in range(3):
        OrderFactory(status="PENDING", stuck_minutes=45)

    assert healing_cycle_run(trigger="CLI").guard_tripped
    assert healing_cycle_run(trigger="CLI").guard_tripped

    (alert,) = _open("guard")
    assert alert.severity == "CRITICAL" and alert.occurrences == 2
    assert len(mail.outbox) == 1

    settings.HEALING_GUARD_MIN_STUCK = 1000
    healing_cycle_run(trigger="CLI")
    assert _open("guard") == []


# --- Auto-resolution ----------------------------------------------------------------------


def _failed_notification(order, notification_type="HEALING_FAILED"):
    healing = HealingActionFactory(
        order=order,
        recovery_status=(
            RecoveryStatus.MANUAL_REQUIRED
            if notification_type == "MANUAL_INTERVENTION_REQUIRED"
            else RecoveryStatus.FAILED
        ),
        claim_token=None,
        lease_expires_at=None,
    )
    return AdminNotificationFactory(
        order=order, healing_action=healing, notification_type=notification_type, sent=True
    )


def test_notifications_resolve_when_their_order_recovers_or_finishes(sweep):
    actor = order_services.Actor.system()
    recovers = OrderFactory(status="PENDING", stuck_minutes=45)
    finishes = OrderFactory(status="CONFIRMED", stuck_minutes=90)
    still_stuck = OrderFactory(status="PENDING", stuck_minutes=45)
    manual = OrderFactory(status="ACCEPTED", stuck_minutes=400)
    n_recovers = _failed_notification(recovers)
    n_finishes = _failed_notification(finishes)
    n_still = _failed_notification(still_stuck)
    n_manual = _failed_notification(manual, "MANUAL_INTERVENTION_REQUIRED")
    assert order_on_manual_hold(order_id=manual.pk)

    order_services.order_confirm(order=recovers, actor=actor)
    order_services.order_cancel(order=finishes, actor=actor, reason="buyer withdrew")
    order_services.order_start_processing(order=manual, actor=actor)  # fixed by hand

    result = sweep()

    assert result.resolved == 3
    for notification in (n_recovers, n_finishes, n_still, n_manual):
        notification.refresh_from_db()
    assert n_recovers.resolution_note == "order recovered"
    assert n_finishes.resolution_note == "order finished"
    assert n_manual.resolved_at is not None
    assert n_still.resolved_at is None
    # The recovered order is no longer held back from automation.
    assert not order_on_manual_hold(order_id=manual.pk)
    assert sweep().resolved == 0


# --- Cost -------------------------------------------------------------------------------


def _monitoring_statements(count: int) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(count):
        _failed_notification(OrderFactory(status="DELIVERED"))
    with CaptureQueriesContext(connection) as queries:
        result = monitoring_run()
    assert result.resolved == count
    audit_rows_delete(AdminNotification.objects.all())
    return len(queries.captured_queries)


def test_the_monitoring_statement_count_does_not_grow_with_the_backlog(quiet_channels):
    assert _monitoring_statements(3) == _monitoring_statements(40)


def test_the_beat_task_runs_monitoring(quiet_channels):
    from healing.tasks import monitoring_check

    assert set(monitoring_check()) == {"resolved", "raised", "cleared"}
