"""One healing cycle: detect, record a healing per stuck order, dispatch.

Only one cycle runs at a time, across every machine: the RUNNING cycle row is
the lock (a partial unique constraint); a second caller returns
``ran=False``. The lock frees itself when its holder dies: the row carries a
heartbeat refreshed while the cycle works, and a RUNNING row whose heartbeat
is older than ``HEALING_CYCLE_STALE_SECONDS`` is marked ABANDONED (the record
stays). The cycle's rows are created in one transaction and their tasks leave
only after it commits (invariant 6). Active healings whose lease ran out are
re-dispatched with a new token (invariant 7, :mod:`healing.sweeper`), skipping
rows another transaction holds.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from healing.actions.base import dispatch_lease_deadline
from healing.detection import (
    StuckOrder,
    expired_active_healings,
    open_orders_count,
    stuck_orders_batches,
)
from healing.dispatch import healings_dispatch
from healing.errors import CycleAlreadyRunning
from healing.guard import GUARDED_ACTIONS, guard_report, guard_trips
from healing.liveness import Heartbeat, connection_drop_broken, heartbeats_enabled
from healing.models import (
    CycleStatus,
    HealingAction,
    HealingCycle,
    RecoveryStatus,
    SkipReason,
    Trigger,
)
from healing.reports.rollup import metrics_rollup_after_cycle
from healing.silences import silences_apply
from healing.sweeper import leases_redispatch
from orders.sql import untallied

logger = logging.getLogger("healing")

Dispatch = Callable[[list[tuple[int, str]]], None]

# Cycles a worker runs on its own schedule log the seed's "Self-healing
# worker" lines; one an operator asked for (API, CLI) says so instead.
WORKER_TRIGGERS = frozenset({Trigger.BEAT, Trigger.STARTUP, Trigger.DEMO})


@dataclass
class CycleResult:
    ran: bool
    cycle_id: int | None = None
    detected: int = 0
    dispatched: int = 0
    redispatched: int = 0
    healed: int = 0
    failed: int = 0
    skipped: int = 0
    escalated: int = 0
    pending: int = 0
    guard_tripped: bool = False
    dry_run: int = 0
    duration_ms: float = 0.0
    reason: str = ""
    by_action: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _label(trigger: str) -> str:
    return (
        "Self-healing worker" if trigger in WORKER_TRIGGERS else f"Self-healing cycle ({trigger})"
    )


def healing_cycle_run(
    *, trigger: str = Trigger.BEAT, now: datetime | None = None, dispatch: Dispatch | None = None
) -> CycleResult:
    """Detect every stuck order, record its healing, dispatch the heal tasks
    (up to ``HEALING_TASK_BATCH`` healings a task)."""
    started = time.monotonic()
    now = now or timezone.now()
    cycle = _cycle_acquire(trigger=trigger, now=now)
    label = _label(trigger)
    if cycle is None:
        logger.info(f"{label}: cycle skipped, another cycle is running")
        return CycleResult(ran=False, reason="another cycle is running")
    logger.info(f"{label}: Starting cycle", extra={"cycle_id": cycle.pk, "trigger": trigger})
    beat = Heartbeat(
        interval=settings.HEALING_CYCLE_HEARTBEAT_SECONDS,
        beat=lambda: _cycle_heartbeat(cycle_id=cycle.pk),
        name=f"cycle-{cycle.pk}",
        enabled=heartbeats_enabled(),
    )
    try:
        with beat:
            result = _cycle_body(cycle=cycle, now=now, dispatch=dispatch)
            _cycle_finish(cycle=cycle, result=result, started=started)
    except Exception as exc:
        _cycle_fail(cycle_id=cycle.pk, error=exc)
        logger.exception(f"{label}: cycle failed", extra={"cycle_id": cycle.pk})
        raise
    logger.info(
        f"{label}: Cycle completed",
        extra={
            "cycle_id": cycle.pk,
            **{k: v for k, v in result.as_dict().items() if k != "by_action"},
        },
    )
    try:
        metrics_rollup_after_cycle(cycle_id=cycle.pk)
    except Exception:
        # The cycle is done and recorded; the per-minute roll-up catches up.
        logger.exception("metrics roll-up after the cycle failed", extra={"cycle_id": cycle.pk})
    return result


def _cycle_heartbeat(*, cycle_id: int) -> bool:
    """Refresh the RUNNING row's heartbeat; False once the row is no longer RUNNING."""
    return bool(
        HealingCycle.objects.filter(pk=cycle_id, status=CycleStatus.RUNNING).update(
            heartbeat_at=timezone.now()
        )
    )


def _cycle_acquire(*, trigger: str, now: datetime) -> HealingCycle | None:
    """Take the cycle lock, first freeing one whose holder died.

    A RUNNING row is abandoned when it is older than the lock time or its
    heartbeat (its start, before the first beat) is older than the stale age.
    """
    wall = timezone.now()  # ``now`` may be a caller's clock; the heartbeat is real time
    stale = wall - timedelta(seconds=settings.HEALING_CYCLE_STALE_SECONDS)
    HealingCycle.objects.filter(status=CycleStatus.RUNNING).filter(
        Q(started_at__lt=now - timedelta(seconds=settings.HEALING_CYCLE_LOCK_SECONDS))
        | Q(heartbeat_at__lt=stale)
        | Q(heartbeat_at__isnull=True, started_at__lt=stale)
    ).update(
        status=CycleStatus.ABANDONED,
        finished_at=wall,
        error="lock freed: the cycle's holder stopped (heartbeat or lock time ran out)",
    )
    try:
        with transaction.atomic():
            return HealingCycle.objects.create(started_at=now, trigger=trigger, heartbeat_at=wall)
    except IntegrityError:
        return None


def _cycle_finish(*, cycle: HealingCycle, result: CycleResult, started: float) -> None:
    cycle_refresh_counts(cycle=cycle)
    cycle.status = CycleStatus.FINISHED
    cycle.finished_at = timezone.now()
    cycle.duration_ms = round((time.monotonic() - started) * 1000, 3)
    cycle.save(update_fields=["status", "finished_at", "duration_ms"])
    result.healed, result.failed = cycle.healed, cycle.failed
    result.skipped, result.escalated, result.pending = cycle.skipped, cycle.escalated, cycle.pending
    result.duration_ms = cycle.duration_ms


def _cycle_fail(*, cycle_id: int, error: BaseException) -> None:
    """Free the lock of a cycle that failed. Best effort: the database may be
    what failed (a connection it broke is dropped first, so this update opens
    a fresh one), and then the lock's expiry frees it."""
    try:
        connection_drop_broken()
        HealingCycle.objects.filter(pk=cycle_id, status=CycleStatus.RUNNING).update(
            status=CycleStatus.FAILED, finished_at=timezone.now(), error=repr(error)[:2000]
        )
    except Exception:
        logger.exception("could not mark the failed cycle", extra={"cycle_id": cycle_id})


@dataclass
class _Plan:
    """What a cycle found, tallied batch by batch (no backlog held at once)."""

    expired: set[int]
    detected: int = 0
    by_action: dict[str, int] = field(default_factory=dict)
    dry_run: int = 0


def _healing_row(
    *, item: StuckOrder, cycle: HealingCycle, lease: datetime, now: datetime
) -> HealingAction:
    status, skip_reason = RecoveryStatus.PENDING, ""
    if item.dry_run:
        status, skip_reason = RecoveryStatus.SKIPPED, SkipReason.DRY_RUN
    pending = status == RecoveryStatus.PENDING
    return HealingAction(
        order_id=item.order_id,
        cycle=cycle,
        issue_type=item.issue_type,
        trigger=cycle.trigger,
        issue_detected_at=now,
        detected_status=item.status,
        episode_started_at=item.stuck_since,
        stuck_minutes=item.stuck_minutes,
        attempt_number=item.attempts + 1,
        dry_run=item.dry_run,
        recovery_action=item.recommended_action,
        recovery_status=status,
        skip_reason=skip_reason,
        completed_at=None if pending else now,
        recovery_duration_seconds=None if pending else 0.0,
        previous_vendor_id=item.vendor_id,
        claim_token=uuid.uuid4() if pending else None,
        lease_expires_at=lease if pending else None,
        created_at=now,
        updated_at=now,
    )


def _rows_record(*, cycle: HealingCycle, now: datetime) -> _Plan:
    """Detect and write the cycle's healing rows batch by batch.

    A backlog of 100k stuck orders is written ``HEALING_CYCLE_BATCH`` rows at a
    time inside the caller's transaction, so neither the stuck orders nor
    their model rows are all in memory at once. Conflict-safe: an order that
    got an active healing since detection (an operator's manual heal) keeps
    that one.
    """
    lease = dispatch_lease_deadline(now)
    # Every active healing past its lease is re-dispatched, stuck order or not.
    plan = _Plan(expired=set(expired_active_healings(now=now)))
    # Each bulk INSERT's text is unique: psycopg must not keep it (untallied).
    with untallied():
        for batch in stuck_orders_batches(now=now, size=settings.HEALING_CYCLE_BATCH):
            rows = []
            for item in batch:
                plan.detected += 1
                if item.expired_healing_id is not None:
                    plan.expired.add(item.expired_healing_id)
                    continue
                plan.dry_run += item.dry_run
                action = item.recommended_action
                plan.by_action[action] = plan.by_action.get(action, 0) + 1
                rows.append(_healing_row(item=item, cycle=cycle, lease=lease, now=now))
            # Issue 18: orders a silence holds are recorded SKIPPED/SILENCED, not sent.
            silences_apply(rows=rows, now=now)
            HealingAction.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
    return plan


def _guard_hold(*, cycle: HealingCycle, now: datetime) -> int:
    """A tripped guard: the cycle's rows for the actions it pauses end
    SKIPPED/GUARD (before a silence: the guard is the louder reason)."""
    return (
        HealingAction.objects.filter(cycle=cycle, recovery_action__in=GUARDED_ACTIONS)
        .filter(
            Q(recovery_status=RecoveryStatus.PENDING)
            | Q(recovery_status=RecoveryStatus.SKIPPED, skip_reason=SkipReason.SILENCED)
        )
        .update(
            recovery_status=RecoveryStatus.SKIPPED,
            skip_reason=SkipReason.GUARD,
            silence=None,
            completed_at=now,
            recovery_duration_seconds=0.0,
            claim_token=None,
            lease_expires_at=None,
        )
    )


def _to_send(*, cycle: HealingCycle) -> tuple[list[tuple[int, str]], dict[int, str]]:
    """The cycle's PENDING rows as (id, token) pairs, with their order numbers."""
    pairs: list[tuple[int, str]] = []
    labels: dict[int, str] = {}
    created = HealingAction.objects.filter(
        cycle=cycle, recovery_status=RecoveryStatus.PENDING
    ).values_list("id", "claim_token", "order__number")
    for healing_id, token, number in created.iterator(chunk_size=5000):
        pairs.append((healing_id, str(token)))
        labels[healing_id] = number
    return pairs, labels


def _send(
    *,
    dispatch: Dispatch | None,
    first: list[tuple[int, str]],
    again: list[tuple[int, str]],
    labels: dict[int, str],
) -> None:
    """First sends in queue order; re-sends of lost healings urgent, ahead of
    any backlog (issue 16). A caller's ``dispatch`` (tests, the benchmark)
    gets them all in one list."""
    if dispatch is not None:
        dispatch(first + again)
        return
    healings_dispatch(first, order_numbers=labels)
    healings_dispatch(again, urgent=True)


def _cycle_body(*, cycle: HealingCycle, now: datetime, dispatch: Dispatch | None) -> CycleResult:
    with transaction.atomic():
        plan = _rows_record(cycle=cycle, now=now)
        open_count = open_orders_count()
        tripped = guard_trips(stuck=plan.detected, open_orders=open_count)
        if tripped:
            _guard_hold(cycle=cycle, now=now)
        to_send, labels = _to_send(cycle=cycle)
        # SKIP LOCKED: a row a frozen backend holds waits for the next sweep.
        redispatched = leases_redispatch(now=now, ids=plan.expired)
        guard_report(
            tripped=tripped,
            cycle_id=cycle.pk,
            stuck=plan.detected,
            open_orders=open_count,
            by_action=plan.by_action,
            now=now,
        )
        HealingCycle.objects.filter(pk=cycle.pk).update(
            detected=plan.detected,
            dispatched=len(to_send) + len(redispatched),
            redispatched=len(redispatched),
            open_orders=open_count,
            guard_tripped=tripped,
        )
        cycle.detected, cycle.guard_tripped = plan.detected, tripped
        # Invariant 6: tasks leave only after their rows are committed.
        transaction.on_commit(
            lambda: _send(dispatch=dispatch, first=to_send, again=redispatched, labels=labels)
        )
    return CycleResult(
        ran=True,
        cycle_id=cycle.pk,
        detected=plan.detected,
        dispatched=len(to_send) + len(redispatched),
        redispatched=len(redispatched),
        guard_tripped=tripped,
        dry_run=plan.dry_run,
        by_action=plan.by_action,
    )


def cycle_refresh_counts(*, cycle: HealingCycle) -> HealingCycle:
    """Recount a cycle's outcomes from its healing rows (they finish after it)."""
    by_status = dict(
        HealingAction.objects.filter(cycle=cycle)
        .order_by()
        .values_list("recovery_status")
        .annotate(n=Count("id"))
    )
    cycle.healed = by_status.get(RecoveryStatus.SUCCESS, 0)
    cycle.failed = by_status.get(RecoveryStatus.FAILED, 0)
    cycle.skipped = by_status.get(RecoveryStatus.SKIPPED, 0)
    cycle.escalated = by_status.get(RecoveryStatus.MANUAL_REQUIRED, 0)
    cycle.pending = by_status.get(RecoveryStatus.PENDING, 0) + by_status.get(
        RecoveryStatus.IN_PROGRESS, 0
    )
    cycle.save(update_fields=["healed", "failed", "skipped", "escalated", "pending"])
    return cycle


def cycles_refresh_pending(*, now: datetime | None = None) -> int:
    """Recount recent cycles that still had healings in flight when they ended.

    A cycle's row is written when it finishes dispatching, before its workers
    finish; the per-minute job brings the counters up to date.
    """
    since = (now or timezone.now()) - timedelta(days=1)
    cycles = list(HealingCycle.objects.filter(started_at__gte=since, pending__gt=0))
    for cycle in cycles:
        cycle_refresh_counts(cycle=cycle)
    return len(cycles)


# --- Operator requests ----------------------------------------------------------


@dataclass(frozen=True)
class CycleReport:
    cycle: HealingCycle
    result: CycleResult
    waited_seconds: float

    @property
    def timed_out(self) -> bool:
        return self.cycle.pending > 0


def cycle_run_and_wait(
    *, trigger: str = Trigger.API, wait_seconds: float | None = None
) -> CycleReport:
    """Run one cycle, then poll its healings until none is pending or time is up.

    In-process (no broker) the healings are finished when the cycle returns;
    with workers they finish on their own clock, so the wait is bounded and
    the answer says how many are still pending. ``wait_seconds=0`` returns at
    once with the cycle to poll.
    """
    wait = settings.HEALING_API_WAIT_SECONDS if wait_seconds is None else wait_seconds
    started = time.monotonic()
    result = healing_cycle_run(trigger=trigger)
    if not result.ran:
        running = HealingCycle.objects.filter(status=CycleStatus.RUNNING).first()
        reason = (
            f"cycle {running.pk} ({running.trigger}) has been running since "
            f"{running.started_at.isoformat()}"
            if running
            else result.reason or "another cycle is running"
        )
        raise CycleAlreadyRunning(f"another cycle is running: {reason}")
    assert result.cycle_id is not None  # a cycle that ran has its row
    cycle = HealingCycle.objects.get(pk=result.cycle_id)
    deadline = started + wait
    while cycle.pending and time.monotonic() < deadline:
        time.sleep(min(settings.HEALING_API_POLL_SECONDS, max(deadline - time.monotonic(), 0)))
        cycle_refresh_counts(cycle=cycle)
    return CycleReport(cycle=cycle, result=result, waited_seconds=time.monotonic() - started)
