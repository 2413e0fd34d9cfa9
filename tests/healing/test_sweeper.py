"""Issue 16: the lease sweeper, take-over of an expired lease, retry times,
the self-freeing cycle lock and broken connections (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from healing import cycle as cycle_module
from healing.cycle import Dispatch, healing_cycle_run
from healing.execution import healing_execute, healing_initiate, healing_retry_or_fail
from healing.liveness import Heartbeat, connection_drop_broken
from healing.models import HealingAction, HealingCycle
from healing.sweeper import leases_redispatch, leases_sweep
from orders.models import OrderStatusChange
from tests.factories import OrderFactory
from tests.healing.conftest import run_in_threads

pytestmark = [pytest.mark.django_db(transaction=True)]


def collect() -> tuple[list[tuple[int, str]], Dispatch]:
    sent: list[tuple[int, str]] = []
    return sent, sent.extend


def expire(*healing_ids: int, seconds: float = 1) -> None:
    HealingAction.objects.filter(pk__in=healing_ids).update(
        lease_expires_at=timezone.now() - timedelta(seconds=seconds)
    )


def claimed_healing(status: str = "CONFIRMED", minutes: int = 61) -> HealingAction:
    """A healing a task claimed (IN_PROGRESS, a token no message carries) and lost."""
    order = OrderFactory(status=status, stuck_minutes=minutes)
    healing = healing_initiate(order=order, trigger="CLI")
    HealingAction.objects.filter(pk=healing.pk).update(recovery_status="IN_PROGRESS")
    return HealingAction.objects.get(pk=healing.pk)


# --- The sweeper ---------------------------------------------------------------------


def test_the_sweeper_redispatches_an_expired_lease_and_the_old_token_changes_nothing():
    healing = claimed_healing()
    old_token = str(healing.claim_token)
    sent, dispatch = collect()

    assert leases_sweep(dispatch=dispatch).redispatched == 0  # the lease is alive
    expire(healing.pk)
    result = leases_sweep(dispatch=dispatch)

    assert result.redispatched == 1
    ((healing_id, token),) = sent
    assert healing_id == healing.pk and token != old_token
    healing.refresh_from_db()
    assert healing.recovery_status == "PENDING" and healing.lease_expires_at > timezone.now()
    assert healing_execute(healing_id=healing.pk, token=old_token).status == "STALE"
    assert healing_execute(healing_id=healing.pk, token=token).status == "SUCCESS"


def test_the_sweeper_works_in_bounded_batches(settings):
    settings.HEALING_SWEEP_BATCH = 2
    settings.HEALING_SWEEP_MAX_BATCHES = 2
    healings = [claimed_healing() for _ in range(5)]
    expire(*[h.pk for h in healings])
    sent, dispatch = collect()

    first = leases_sweep(dispatch=dispatch)
    second = leases_sweep(dispatch=dispatch)

    assert (first.redispatched, first.batches) == (4, 2)
    assert (second.redispatched, second.batches) == (1, 1)
    assert sorted(h for h, _ in sent) == sorted(h.pk for h in healings)


@pytest.mark.parametrize(
    ("chunk", "max_params"),
    [
        # A long outage's expired leases: one UPDATE a chunk (4 + 2), not one a healing.
        (4, None),
        # SQLite caps a statement's parameters: the chunk shrinks to fit them,
        # whatever RENEW_CHUNK says. 20, less the filter's 3 (two statuses, the
        # lease) and 8 spare, at three a row: 3 rows (3 + 3).
        (500, 20),
    ],
    ids=["renew-chunk", "parameter-limit"],
)
def test_many_expired_leases_are_renewed_in_one_statement_each_with_its_own_token(
    monkeypatch, chunk, max_params
):
    from django.test.utils import CaptureQueriesContext

    from healing import sweeper

    monkeypatch.setattr(sweeper, "RENEW_CHUNK", chunk)
    monkeypatch.setattr(connection.features, "max_query_params", max_params)
    healings = [claimed_healing() for _ in range(6)]
    old = {h.pk: str(h.claim_token) for h in healings}
    expire(*old)

    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        pairs = leases_redispatch(now=timezone.now())

    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 2
    assert sorted(h for h, _ in pairs) == sorted(old)
    assert len({token for _, token in pairs}) == 6
    stored = dict(HealingAction.objects.values_list("id", "claim_token"))
    for healing_id, token in pairs:
        assert str(stored[healing_id]) == token != old[healing_id]
    assert set(HealingAction.objects.values_list("recovery_status", flat=True)) == {"PENDING"}


def test_the_sweeper_sends_only_after_its_batch_commits():
    healing = claimed_healing()
    expire(healing.pk)
    seen: list[str] = []

    def dispatch(pairs) -> None:
        ((healing_id, token),) = pairs
        (stored,) = run_in_threads(
            lambda: str(HealingAction.objects.get(pk=healing_id).claim_token)
        )
        seen.append(stored == token)

    leases_sweep(dispatch=dispatch)
    assert seen == [True]


def test_a_retrying_healing_is_not_swept_while_it_waits_for_its_retry(settings):
    settings.HEALING_TASK_BACKOFF_BASE = 100.0
    settings.HEALING_TASK_BACKOFF_MAX = 100.0
    healing = claimed_healing()
    expire(healing.pk)  # the lease would have run out during the wait

    decision = healing_retry_or_fail(
        healing_id=healing.pk, token=healing.claim_token, error="vendor gateway: timeout", retries=0
    )

    assert decision.retry
    healing.refresh_from_db()
    assert healing.next_attempt_at is not None
    assert healing.next_attempt_at <= timezone.now() + timedelta(seconds=decision.countdown + 1)
    assert healing.lease_expires_at > healing.next_attempt_at
    assert leases_sweep(dispatch=lambda pairs: None).redispatched == 0


def test_the_cycle_and_the_sweeper_share_one_redispatch():
    healing = claimed_healing()
    expire(healing.pk)
    sent, dispatch = collect()

    result = healing_cycle_run(trigger="CLI", dispatch=dispatch)

    assert result.redispatched == 1
    assert [h for h, _ in sent] == [healing.pk]
    with transaction.atomic():
        assert leases_redispatch(now=timezone.now()) == []  # nothing left expired


# --- Take-over by a redelivered message --------------------------------------------


def test_a_redelivered_message_takes_over_a_healing_whose_lease_ran_out():
    """The issue's lost heal: a pool child claimed the row (new token) and was
    killed; Celery redelivers the message with the old token."""
    order = OrderFactory(status="CONFIRMED", stuck_minutes=61)
    healing = healing_initiate(order=order, trigger="CLI")
    sent_token = str(healing.claim_token)
    # The dead child's claim: IN_PROGRESS under a token no message carries.
    HealingAction.objects.filter(pk=healing.pk).update(
        recovery_status="IN_PROGRESS", claim_token=uuid.uuid4()
    )

    # While the dead child's lease runs, the redelivery does nothing ...
    assert healing_execute(healing_id=healing.pk, token=sent_token).status == "STALE"
    # ... once it ran out, the redelivery takes the healing over.
    expire(healing.pk)
    assert healing_execute(healing_id=healing.pk, token=sent_token).status == "SUCCESS"
    assert OrderStatusChange.objects.filter(order=order, actor_type="HEALING").count() == 1


# --- The cycle lock ------------------------------------------------------------------


def test_a_running_cycle_with_a_stale_heartbeat_is_abandoned_and_kept(settings):
    settings.HEALING_CYCLE_STALE_SECONDS = 30
    dead = HealingCycle.objects.create(
        started_at=timezone.now() - timedelta(seconds=40),
        heartbeat_at=timezone.now() - timedelta(seconds=31),
        trigger="BEAT",
    )

    assert healing_cycle_run(trigger="CLI").ran
    dead.refresh_from_db()
    assert dead.status == "ABANDONED" and "heartbeat" in dead.error


def test_a_running_cycle_with_a_fresh_heartbeat_keeps_the_lock(settings):
    settings.HEALING_CYCLE_STALE_SECONDS = 30
    HealingCycle.objects.create(
        started_at=timezone.now() - timedelta(seconds=300),
        heartbeat_at=timezone.now() - timedelta(seconds=5),
        trigger="BEAT",
    )
    assert not healing_cycle_run(trigger="CLI").ran


def test_a_database_error_while_counting_frees_the_lock_at_once(monkeypatch):
    OrderFactory(status="CONFIRMED", stuck_minutes=61)

    def refresh_fails(*, cycle):
        raise OperationalError("the connection is closed")

    monkeypatch.setattr(cycle_module, "cycle_refresh_counts", refresh_fails)
    with pytest.raises(OperationalError):
        healing_cycle_run(trigger="CLI", dispatch=lambda pairs: None)
    monkeypatch.undo()

    assert HealingCycle.objects.get().status == "FAILED"
    assert healing_cycle_run(trigger="CLI", dispatch=lambda pairs: None).ran


def test_a_failed_roll_up_after_the_cycle_does_not_fail_the_cycle(monkeypatch):
    def rollup_fails(*, cycle_id):
        raise OperationalError("server closed the connection")

    monkeypatch.setattr(cycle_module, "metrics_rollup_after_cycle", rollup_fails)
    assert healing_cycle_run(trigger="CLI").ran
    assert HealingCycle.objects.get().status == "FINISHED"


# --- Heartbeats and connections --------------------------------------------------------


def test_a_heartbeat_beats_until_its_block_ends_and_stops_when_told():
    beats: list[float] = []
    with Heartbeat(interval=0.05, beat=lambda: beats.append(time.monotonic()) or True, name="t"):
        time.sleep(0.3)
    count = len(beats)
    time.sleep(0.15)
    assert count >= 2 and len(beats) == count  # nothing after the block

    with Heartbeat(interval=0.05, beat=lambda: False, name="t") as lost:
        time.sleep(0.2)
    assert lost.lost and lost.beats == 1


def test_a_heartbeat_survives_a_failing_beat():
    calls: list[int] = []

    def flaky() -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("lock timeout")
        return True

    with Heartbeat(interval=0.05, beat=flaky, name="t") as beat:
        time.sleep(0.3)
    assert len(calls) >= 2 and beat.beats >= 1 and not beat.lost


def test_a_healthy_connection_is_kept_and_none_is_closed_inside_a_transaction():
    HealingCycle.objects.count()
    assert connection_drop_broken() is False
    assert connection.connection is not None
    with transaction.atomic():
        assert connection_drop_broken() is False


def _beater_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "heartbeats"]


def test_one_thread_runs_every_heartbeat_and_closes_its_connection_when_idle(monkeypatch):
    from healing import liveness

    monkeypatch.setattr(liveness._Beater, "IDLE_SECONDS", 0.3)
    beats: list[tuple[str, int]] = []
    used: list[BaseDatabaseWrapper] = []

    def beat(name: str) -> Callable[[], bool]:
        def run() -> bool:
            HealingCycle.objects.exists()  # a query on the beater's own connection
            beats.append((name, threading.get_ident()))
            used.append(connections["default"])
            return True

        return run

    with (
        Heartbeat(interval=0.05, beat=beat("a"), name="a"),
        Heartbeat(interval=0.05, beat=beat("b"), name="b"),
    ):
        time.sleep(0.25)
        assert len(_beater_threads()) == 1
    for _ in range(50):  # a heal's short calls never start a second thread
        with Heartbeat(interval=5, beat=beat("short"), name="short"):
            pass
    assert len(_beater_threads()) == 1
    assert {name for name, _ in beats} == {"a", "b"}
    assert len({ident for _, ident in beats}) == 1  # one thread ran both
    deadline = time.monotonic() + 3
    while _beater_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _beater_threads()  # gone once idle
    assert used
    if connection.vendor == "postgresql":  # (Django keeps an in-memory SQLite open)
        assert all(wrapper.connection is None for wrapper in used)  # and closed
    assert all(wrapper is not connection for wrapper in used)  # never the caller's


# --- Visibility ----------------------------------------------------------------------


def test_the_api_and_metrics_tell_retrying_and_lost_healings_from_running_ones(
    client_for, settings
):
    from healing.reports.prometheus import metrics_render

    settings.HEALING_TASK_BACKOFF_BASE = 100.0
    settings.HEALING_TASK_BACKOFF_MAX = 100.0
    running, retrying, lost = claimed_healing(), claimed_healing(), claimed_healing()
    healing_retry_or_fail(
        healing_id=retrying.pk, token=retrying.claim_token, error="vendor gateway", retries=0
    )
    expire(lost.pk)
    api = client_for("OPERATIONS")

    def state(healing: HealingAction) -> dict:
        response = api.get(f"/api/v1/self-healing/healing-actions/{healing.pk}")
        assert response.status_code == 200
        return response.json()["healing"]

    assert state(running)["machinery_state"] == "running"
    body = state(retrying)
    assert body["machinery_state"] == "retrying" and body["next_attempt_at"]
    assert state(lost)["machinery_state"] == "lease_expired"
    text = metrics_render().decode()
    assert "healing_retrying_healings 1.0" in text
    assert "healing_expired_leases 1.0" in text


def test_a_redelivered_message_comes_back_when_the_dead_holders_lease_runs_out(monkeypatch):
    """A pool child claimed the healing and was killed; the redelivery (at the
    head of the queue) finds the dead child's lease alive, so it schedules
    itself for when that lease runs out and then takes the healing over."""
    from healing import tasks

    order = OrderFactory(status="CONFIRMED", stuck_minutes=61)
    healing = healing_initiate(order=order, trigger="CLI")
    sent_token = str(healing.claim_token)
    HealingAction.objects.filter(pk=healing.pk).update(
        recovery_status="IN_PROGRESS",
        claim_token=uuid.uuid4(),
        lease_expires_at=timezone.now() + timedelta(seconds=30),
    )
    scheduled: list[dict] = []
    monkeypatch.setattr(tasks, "_redelivered", lambda request: True)
    monkeypatch.setattr(tasks, "heal_order_send", lambda **kwargs: scheduled.append(kwargs))

    # An eager result is already computed: reading it cannot block, whatever
    # Celery's process-wide "inside a worker" flag says (an earlier test may set it).
    assert (
        tasks.heal_order.apply(args=(healing.pk, sent_token)).get(disable_sync_subtasks=False)
        == "STALE"
    )
    ((call),) = scheduled
    assert call["takeover"] and call["token"] == sent_token
    assert 29 <= call["countdown"] <= 31

    # Once: the come-back itself never schedules another.
    tasks.heal_order.apply(args=(healing.pk, sent_token), kwargs={"takeover": True}).get(
        disable_sync_subtasks=False
    )
    assert len(scheduled) == 1
    expire(healing.pk)
    result = tasks.heal_order.apply(args=(healing.pk, sent_token), kwargs={"takeover": True})
    assert result.get(disable_sync_subtasks=False) == "SUCCESS"
