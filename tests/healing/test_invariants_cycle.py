"""Invariants 6, 7 and 8 (docs/INVARIANTS.md), on real PostgreSQL connections: a cycle's
tasks leave only after its healing rows commit (6), a lost or overtaken task is
re-dispatched after its lease with a new token and the stale one does nothing
(7), and the blast-radius guard pauses reassign and cancel under one critical
alert (8); with them, one cycle at a time, dry-run rules, and issue 16's
heartbeat leases, frozen workers, locks that do not wait and connection
timeouts.

Invariants 2, 3 and 4 (one active healing, one effect, in the detected status)
are in test_invariants_effects.py."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from healing.cycle import healing_cycle_run
from healing.execution import healing_execute, healing_initiate
from healing.models import HealingAction, HealingCycle, RecoveryStatus
from healing.sweeper import SweepResult, leases_sweep
from notifications.models import AdminNotification
from orders.models import OrderStatusChange, VendorMessage
from tests.factories import OrderFactory, VendorFactory
from tests.healing.conftest import ScriptedGateway, run_in_threads
from tests.healing.helpers import collect

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_lost_task_is_redispatched_after_its_lease_and_the_stale_task_does_nothing(settings):
    settings.HEALING_LEASE_SECONDS = 60
    order = OrderFactory(status="CONFIRMED", stuck_minutes=61)
    sent, dispatch = collect()
    healing_cycle_run(trigger="CLI", dispatch=dispatch)
    ((healing_id, first_token),) = sent
    # The task was lost: nothing happens until the lease runs out.
    sent.clear()
    healing_cycle_run(trigger="CLI", dispatch=dispatch)
    assert sent == []
    HealingAction.objects.filter(pk=healing_id).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )

    healing_cycle_run(trigger="CLI", dispatch=dispatch)

    ((same_id, new_token),) = sent
    assert same_id == healing_id and new_token != first_token
    assert HealingAction.objects.filter(order=order).count() == 1
    assert healing_execute(healing_id=healing_id, token=first_token).status == "STALE"
    assert healing_execute(healing_id=healing_id, token=new_token).status == "SUCCESS"


def test_a_slow_task_overtaken_after_its_lease_cannot_apply_a_second_effect(settings):
    """The original task is stuck in the vendor call past its lease; the next
    cycle re-dispatches and a fresh task heals the order; the slow one then
    finds its token stale and rolls back."""
    settings.HEALING_LEASE_SECONDS = 60
    order = OrderFactory(status="ACCEPTED", stuck_minutes=121)
    VendorFactory.create_batch(2)
    sent, dispatch = collect()
    healing_cycle_run(trigger="CLI", dispatch=dispatch)
    ((healing_id, token),) = sent

    overtaken_once = threading.Event()

    def overtaken(message) -> None:
        if overtaken_once.is_set():
            return
        overtaken_once.set()
        HealingAction.objects.filter(pk=healing_id).update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        sent.clear()
        healing_cycle_run(trigger="CLI", dispatch=dispatch)
        ((_, fresh),) = sent
        run_in_threads(lambda: healing_execute(healing_id=healing_id, token=fresh))

    slow = healing_execute(
        healing_id=healing_id, token=token, gateway=ScriptedGateway(during=overtaken)
    )

    assert slow.status == "STALE"
    healing = HealingAction.objects.get(pk=healing_id)
    assert healing.recovery_status == "SUCCESS"
    assert OrderStatusChange.objects.filter(order=order, actor_type="HEALING").count() == 1
    assert HealingAction.objects.filter(order=order, recovery_status="SUCCESS").count() == 1


def test_tasks_are_sent_only_after_the_healing_rows_commit():
    OrderFactory.create_batch(3, status="CONFIRMED", stuck_minutes=61)
    seen_from_another_connection: list[object] = []

    def dispatch(pairs) -> None:
        ids = [healing_id for healing_id, _ in pairs]
        (count,) = run_in_threads(lambda: HealingAction.objects.filter(pk__in=ids).count())
        seen_from_another_connection.append(count)

    healing_cycle_run(trigger="CLI", dispatch=dispatch)
    assert seen_from_another_connection == [3]


def test_the_guard_pauses_reassign_and_cancel_and_raises_one_critical_alert(settings):
    settings.HEALING_GUARD_MIN_STUCK = 4
    settings.HEALING_GUARD_MAX_SHARE = 0.5
    VendorFactory.create_batch(3, capacity=1000)
    pending = [OrderFactory(status="PENDING", stuck_minutes=31) for _ in range(4)]
    confirmed = OrderFactory(status="CONFIRMED", stuck_minutes=61)
    OrderFactory.create_batch(2, status="PROCESSING", stuck_minutes=1)  # healthy, open

    first = healing_cycle_run(trigger="CLI")
    second = healing_cycle_run(trigger="CLI")

    assert first.guard_tripped and second.guard_tripped
    for order in pending:
        order.refresh_from_db()
        assert order.status == "PENDING"
        assert order.vendor_id == order.assignments.get().vendor_id  # never reassigned
    rows = HealingAction.objects.filter(order__in=pending)
    assert set(rows.values_list("recovery_status", "skip_reason")) == {("SKIPPED", "GUARD")}
    assert HealingAction.objects.get(order=confirmed).recovery_status == "SUCCESS"
    alerts = AdminNotification.objects.filter(notification_type="SYSTEM_ALERT")
    assert alerts.count() == 1
    alert = alerts.get()
    assert (alert.severity, alert.occurrences, alert.resolved_at) == ("CRITICAL", 2, None)
    assert HealingCycle.objects.filter(guard_tripped=True).count() == 2

    # The outage ends: guard-skipped healings were not attempts, so each order
    # starts at the first rung, and the alert resolves.
    settings.HEALING_GUARD_MIN_STUCK = 2000
    healing_cycle_run(trigger="CLI")
    for order in pending:
        latest = HealingAction.objects.filter(order=order).latest("id")
        assert (latest.recovery_action, latest.recovery_status) == ("REASSIGN_VENDOR", "SUCCESS")
    alert.refresh_from_db()
    assert alert.resolved_at is not None


def test_guard_is_not_tripped_below_either_threshold(settings):
    settings.HEALING_GUARD_MIN_STUCK = 3
    settings.HEALING_GUARD_MAX_SHARE = 0.5
    VendorFactory.create_batch(2, capacity=1000)
    [OrderFactory(status="PENDING", stuck_minutes=31) for _ in range(3)]
    OrderFactory.create_batch(4, status="PROCESSING", stuck_minutes=1)  # 3/7 < 0.5

    assert not healing_cycle_run(trigger="CLI").guard_tripped
    assert not AdminNotification.objects.filter(notification_type="SYSTEM_ALERT").exists()


def test_two_cycles_at_once_one_runs_the_other_exits():
    OrderFactory.create_batch(5, status="CONFIRMED", stuck_minutes=61)

    def slow_dispatch(pairs) -> None:
        time.sleep(0.3)

    results = run_in_threads(
        lambda: healing_cycle_run(trigger="BEAT", dispatch=slow_dispatch),
        lambda: healing_cycle_run(trigger="STARTUP", dispatch=slow_dispatch),
    )

    assert sorted(r.ran for r in results) == [False, True], results
    assert HealingAction.objects.count() == 5
    assert HealingCycle.objects.count() == 1


def test_a_crashed_cycle_stops_blocking_after_its_lock_time(settings):
    settings.HEALING_CYCLE_LOCK_SECONDS = 60
    HealingCycle.objects.create(
        started_at=timezone.now() - timedelta(seconds=61), trigger="BEAT", status="RUNNING"
    )
    assert healing_cycle_run(trigger="CLI").ran
    assert HealingCycle.objects.filter(status="ABANDONED").count() == 1


def test_dry_run_rules_record_what_would_be_done_and_change_nothing():
    from healing.models import StuckRule

    StuckRule.objects.filter(status="PENDING").update(dry_run=True)
    order = OrderFactory(status="PENDING", stuck_minutes=31)
    VendorFactory()

    result = healing_cycle_run(trigger="CLI")

    assert result.dry_run == 1
    healing = HealingAction.objects.get(order=order)
    assert (healing.recovery_action, healing.recovery_status, healing.skip_reason) == (
        "REASSIGN_VENDOR",
        RecoveryStatus.SKIPPED,
        "DRY_RUN",
    )
    order.refresh_from_db()
    assert order.status == "PENDING" and OrderStatusChange.objects.filter(order=order).count() == 1


def test_a_lost_manual_healing_on_a_fresh_order_is_redispatched_too():
    order = OrderFactory(status="CONFIRMED", stuck_minutes=1)  # not past its threshold
    healing = healing_initiate(order=order, trigger="API", recovery_action="RETRY_WORKFLOW")
    HealingAction.objects.filter(pk=healing.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    sent, dispatch = collect()

    result = healing_cycle_run(trigger="CLI", dispatch=dispatch)

    assert result.detected == 0 and result.redispatched == 1
    ((healing_id, token),) = sent
    assert healing_id == healing.pk and token != str(healing.claim_token)
    assert healing_execute(healing_id=healing_id, token=token).status == "SUCCESS"


# --- Issue 16: heartbeat leases, frozen workers, locks that do not wait -------------


def test_a_slow_vendor_call_keeps_its_lease_alive_with_heartbeats(settings):
    """The heartbeat renews the lease during a call longer than the lease: the
    sweeper sees a live lease and the slow task applies its effect."""
    settings.HEALING_LEASE_SECONDS = 1
    settings.HEALING_LEASE_RENEW_SECONDS = 0.2
    order = OrderFactory(status="CONFIRMED", stuck_minutes=61)
    healing = healing_initiate(order=order, trigger="CLI")
    swept: list[int] = []

    def slow_call(message) -> None:
        time.sleep(1.6)  # past the 1 s lease
        (result,) = run_in_threads(lambda: leases_sweep(dispatch=lambda pairs: None))
        assert isinstance(result, SweepResult), result
        swept.append(result.redispatched)

    gateway = ScriptedGateway(during=slow_call)
    outcome = healing_execute(healing_id=healing.pk, token=healing.claim_token, gateway=gateway)

    assert swept == [0]
    assert outcome.status == "SUCCESS"


def test_a_frozen_heal_woken_after_its_lease_applies_nothing(settings):
    """SIGSTOP past the lease, then SIGCONT: while the original is frozen in its
    vendor call its lease runs out, the sweeper re-dispatches and a fresh task
    heals the order; the original wakes, finds its lease taken and stops. The
    effect happens once; both deliveries to the vendor have their rows."""
    settings.HEALING_LEASE_SECONDS = 1
    settings.HEALING_LEASE_RENEW_SECONDS = 0.5
    order = OrderFactory(status="CONFIRMED", stuck_minutes=61)
    healing = healing_initiate(order=order, trigger="CLI")
    fresh_outcomes = []

    frozen_once = threading.Event()

    def frozen(message) -> None:
        if frozen_once.is_set():
            return
        frozen_once.set()
        # Frozen: no heartbeat runs in a stopped process, so the lease runs out.
        HealingAction.objects.filter(pk=healing.pk).update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        sent: list[tuple[int, str]] = []
        (result,) = run_in_threads(lambda: leases_sweep(dispatch=sent.extend))
        assert isinstance(result, SweepResult), result
        assert result.redispatched == 1
        ((_, fresh),) = sent
        fresh_outcomes.extend(
            run_in_threads(lambda: healing_execute(healing_id=healing.pk, token=fresh))
        )
        time.sleep(0.6)  # the original "wakes up" past its renewal interval

    gateway = ScriptedGateway(during=frozen)
    stale = healing_execute(healing_id=healing.pk, token=healing.claim_token, gateway=gateway)

    assert [o.status for o in fresh_outcomes] == ["SUCCESS"]
    assert stale.status == "STALE"
    assert OrderStatusChange.objects.filter(order=order, reason__contains="re-sent").count() == 1
    assert HealingAction.objects.get(pk=healing.pk).recovery_status == "SUCCESS"
    # The vendor got the step twice (the frozen call, then the fresh task's):
    # both are recorded, the frozen one although its apply never ran.
    assert len(gateway.sent) == 1
    assert VendorMessage.objects.filter(order=order).count() == 2


def test_a_backend_frozen_inside_its_apply_transaction_does_not_hold_up_the_cycle():
    """The cycle's re-dispatch skips a row another transaction holds."""
    held = OrderFactory(status="CONFIRMED", stuck_minutes=61)
    free = OrderFactory(status="CONFIRMED", stuck_minutes=61)
    healings = [healing_initiate(order=o, trigger="CLI") for o in (held, free)]
    HealingAction.objects.filter(pk__in=[h.pk for h in healings]).update(
        recovery_status="IN_PROGRESS", lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    locked, release = threading.Event(), threading.Event()

    def frozen_apply() -> None:
        with transaction.atomic():
            HealingAction.objects.select_for_update().get(pk=healings[0].pk)
            locked.set()
            release.wait(10)

    holder = threading.Thread(target=lambda: run_in_threads(frozen_apply))
    holder.start()
    assert locked.wait(10)
    sent, dispatch = collect()
    started = time.monotonic()
    try:
        result = healing_cycle_run(trigger="CLI", dispatch=dispatch)
    finally:
        release.set()
        holder.join(10)

    assert time.monotonic() - started < 3
    assert result.redispatched == 1
    assert [h for h, _ in sent] == [healings[1].pk]
    # Once the frozen backend is gone, the next sweep picks the other up.
    sent.clear()
    assert leases_sweep(dispatch=dispatch).redispatched == 1
    assert [h for h, _ in sent] == [healings[0].pk]


def test_a_worker_idle_through_a_database_restart_runs_the_next_beat_cycle():
    """The database dropped the worker's connection (a restart): the next
    run_cycle drops the dead connection and runs."""
    from django.db import connection

    from healing.tasks import run_cycle

    OrderFactory(status="CONFIRMED", stuck_minutes=61)
    HealingCycle.objects.count()  # the worker's connection is open
    backend_pid = connection.connection.info.backend_pid
    run_in_threads(lambda: _terminate(backend_pid))

    # An eager result is already computed: reading it cannot block, whatever
    # Celery's process-wide "inside a worker" flag says (an earlier test may set it).
    result = run_cycle.apply(kwargs={"trigger": "BEAT"}).get(disable_sync_subtasks=False)

    assert result["ran"] and result["detected"] == 1


def _terminate(pid: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_connections_carry_the_timeouts_and_keepalives():
    from django.db import connection

    names = (
        "lock_timeout",
        "idle_in_transaction_session_timeout",
        "statement_timeout",
        # The server's own keepalives: what frees a backend cut off mid-pipeline.
        "tcp_keepalives_idle",
        "tcp_keepalives_count",
        "tcp_user_timeout",
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(f"current_setting('{name}')" for name in names))
        shown = dict(zip(names, cursor.fetchone(), strict=True))
    assert shown == {
        "lock_timeout": "5s",
        "idle_in_transaction_session_timeout": "1min",
        "statement_timeout": "1min",
        "tcp_keepalives_idle": "30",
        "tcp_keepalives_count": "3",
        "tcp_user_timeout": "60000",
    }
    assert connection.connection.info.get_parameters()["tcp_user_timeout"] == "60000"
    assert connection.connection.info.get_parameters()["keepalives"] == "1"
