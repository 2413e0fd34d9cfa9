"""Expired leases: re-dispatch lost healings, from the cycle and between cycles.

A healing whose lease ran out lost its task (a killed worker, a lost message,
a frozen process): :func:`leases_redispatch` gives it a new claim token and a
fresh dispatch lease, so whatever the old task does if it ever wakes up
changes nothing (docs/INVARIANTS.md, invariant 7). The cycle calls it for what it
detected; the beat task :func:`leases_sweep` calls it every
``HEALING_SWEEP_SECONDS`` in bounded batches, so a lost healing waits about
one lease, not the next detection cycle.

When a healing's holder is known to be dead, nobody waits for its lease
(:func:`healings_rescue`): a pool child that died under its heal task is
noticed by the worker's main process (:class:`HealRequest`), a whole worker
that died by its liveness key running out (``healing.liveness``). Every
re-send is urgent: it overtakes the queue's backlog (``healing.dispatch``).

Rows are locked with ``FOR UPDATE SKIP LOCKED``: a row some other
transaction holds (a frozen backend inside its apply transaction, a
concurrent sweep) is skipped this time, never waited on.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import redis
from billiard.exceptions import WorkerLostError
from celery import Task, current_app
from celery.signals import worker_ready
from celery.worker.request import Request
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Q, QuerySet, UUIDField, Value, When
from django.utils import timezone

from healing.actions.base import dispatch_lease_deadline
from healing.dispatch import HEAL_ORDER, heal_pairs, healings_dispatch
from healing.liveness import (
    Held,
    broker_orphans,
    broker_tokens,
    connection_drop_broken,
    workers_forget,
    workers_lost,
)
from healing.models import ACTIVE_STATUSES, HealingAction, RecoveryStatus

logger = logging.getLogger("healing")

Dispatch = Callable[[list[tuple[int, str]]], None]


def leases_redispatch(
    *, now: datetime, ids: Iterable[int] | None = None, limit: int | None = None
) -> list[tuple[int, str]]:
    """A new token for each active healing whose lease has run out.

    Call it inside a transaction and send the pairs after it commits. ``ids``
    narrows it to those healings (the cycle's); ``limit`` bounds the batch.
    """
    rows = HealingAction.objects.filter(
        recovery_status__in=ACTIVE_STATUSES, lease_expires_at__lt=now
    )
    if ids is not None:
        wanted = sorted(set(ids))
        if not wanted:
            return []
        rows = rows.filter(pk__in=wanted)
    return _tokens_renew(rows, now=now, limit=limit)


def healings_rescue(
    held: Iterable[Held],
    *,
    now: datetime,
    window: float | None = None,
    retries: int | None = None,
) -> list[tuple[int, str]]:
    """A new token for each healing a dead holder had, without waiting for its lease.

    ``held``: (healing id, token the holder was sent, when it started the
    task or None). A healing qualifies while it is active and either still
    carries that token (the holder never claimed it) or is IN_PROGRESS with
    a claim made since the holder started (the claim is the dead holder's),
    within ``window`` seconds of that start when given. A claim that is
    another task's does not qualify: not one waiting for its retry
    (``next_attempt_at`` set), and, when the holder's ``retries`` is known,
    not one made at another retry count (a batch's healing that a retry
    task claimed after the batch handed it over).
    Call it inside a transaction and send the pairs after it commits.
    """
    match = Q(pk__in=[])
    for healing_id, token, started in held:
        mine = Q(claim_token=token)
        if started is not None:
            # One second of slack: the holder's clock read its start first.
            since = datetime.fromtimestamp(started - 1, tz=UTC)
            claimed = Q(
                recovery_status=RecoveryStatus.IN_PROGRESS,
                updated_at__gte=since,
                next_attempt_at__isnull=True,
            )
            if retries is not None:
                claimed &= Q(retry_count=retries)
            if window is not None:
                claimed &= Q(updated_at__lt=datetime.fromtimestamp(started + window, tz=UTC))
            mine |= claimed
        match |= Q(pk=healing_id) & mine
    rows = HealingAction.objects.filter(match, recovery_status__in=ACTIVE_STATUSES)
    return _tokens_renew(rows, now=now)


# Rows a renewing UPDATE names at most (its CASE has one branch per row).
RENEW_CHUNK = 500


def _tokens_renew(
    rows: QuerySet[HealingAction], *, now: datetime, limit: int | None = None
) -> list[tuple[int, str]]:
    """A new token and a fresh dispatch lease for each row, one UPDATE per
    ``RENEW_CHUNK`` rows: a long outage's thousand expired leases are not a
    thousand statements (16.7 s for 1,745 at `make faults` size)."""
    locked = rows.select_for_update(skip_locked=True).order_by("lease_expires_at", "id")
    if limit is not None:
        locked = locked[:limit]
    ids = list(locked.values_list("id", flat=True))
    lease = dispatch_lease_deadline(now)
    # Three parameters a row (the IN list, the CASE's id and token), on top
    # of the filter's own (the cycle's ids, a rescue's conditions).
    most = connection.features.max_query_params
    chunk = RENEW_CHUNK
    if most is not None:
        own = len(rows.query.sql_with_params()[1])
        chunk = max(1, min(RENEW_CHUNK, (most - own - 8) // 3))
    sent: list[tuple[int, str]] = []
    for start in range(0, len(ids), chunk):
        tokens = {healing_id: uuid.uuid4() for healing_id in ids[start : start + chunk]}
        # Locked above, so no wait; the conditions stay for SQLite (no locks).
        changed = rows.filter(pk__in=list(tokens)).update(
            recovery_status=RecoveryStatus.PENDING,
            claim_token=Case(
                *(When(pk=healing_id, then=Value(token)) for healing_id, token in tokens.items()),
                output_field=UUIDField(),
            ),
            lease_expires_at=lease,
            next_attempt_at=None,
            updated_at=now,
        )
        if changed < len(tokens):
            # Some row moved on between the read and the write (SQLite): only
            # the rows that now carry our token were renewed.
            held = dict(
                HealingAction.objects.filter(pk__in=list(tokens)).values_list("id", "claim_token")
            )
            tokens = {h: t for h, t in tokens.items() if held.get(h) == t}
        sent += [(healing_id, str(token)) for healing_id, token in tokens.items()]
    return sent


@dataclass(frozen=True)
class SweepResult:
    redispatched: int
    batches: int
    rescued: int = 0  # healings of dead workers, re-sent before their leases ran out

    def as_dict(self) -> dict[str, int]:
        return {"redispatched": self.redispatched, "batches": self.batches, "rescued": self.rescued}


def leases_sweep(*, now: datetime | None = None, dispatch: Dispatch | None = None) -> SweepResult:
    """Re-dispatch every expired lease, ``HEALING_SWEEP_BATCH`` rows a transaction.

    Each batch's tasks leave after its transaction commits (invariant 6). At
    most ``HEALING_SWEEP_MAX_BATCHES`` batches a run; the next run goes on.
    """
    now = now or timezone.now()
    send = dispatch or partial(healings_dispatch, urgent=True)
    rescued = workers_lost_rescue(now=now, dispatch=send)
    total = batches = 0
    for _ in range(max(settings.HEALING_SWEEP_MAX_BATCHES, 1)):
        with transaction.atomic():
            pairs = leases_redispatch(now=now, limit=settings.HEALING_SWEEP_BATCH)
            if pairs:
                transaction.on_commit(partial(send, pairs))
        batches += 1
        total += len(pairs)
        if len(pairs) < settings.HEALING_SWEEP_BATCH:
            break
    if total:
        logger.info(
            "expired leases re-dispatched", extra={"redispatched": total, "batches": batches}
        )
    return SweepResult(redispatched=total, batches=batches, rescued=rescued)


def workers_lost_rescue(*, now: datetime, dispatch: Dispatch) -> int:
    """Re-dispatch the healings of dead workers, without waiting for their leases.

    Two sources: the last report of each worker whose liveness key expired,
    and (Redis) the broker's delivered-but-unacknowledged heal messages that
    have sat longer than the dead age with no live worker holding them, which
    covers what a worker fetched or started after its last report.
    """
    dead_age = settings.HEALING_WORKER_DEAD_SECONDS
    if dead_age <= 0:
        return 0
    lost = workers_lost()
    held = [entry for _, entries in lost for entry in entries]
    orphans = broker_orphans(now=now.timestamp(), min_age=dead_age, task_name=HEAL_ORDER)
    # A claim made later than the dead age after delivery is not the dead
    # holder's (a live holder reports it; a rescue re-sent it): keep the
    # window so a message left in the broker is rescued once.
    held += [(h, t, s) for h, t, s in orphans]
    # A worker died: it may have taken a message off the broker's list
    # without recording it (below).
    dropped = handoffs_lost(now=now, min_age=dead_age) if lost else []
    held += dropped
    if not held:
        return 0
    with transaction.atomic():
        pairs = healings_rescue(held, now=now, window=dead_age)
        if pairs:
            transaction.on_commit(partial(dispatch, pairs))
    workers_forget([worker for worker, _ in lost])
    if pairs:
        logger.warning(
            "lost workers' healings re-dispatched",
            extra={
                "workers": [w for w, _ in lost],
                "orphans": len(orphans),
                "dropped": len(dropped),
                "redispatched": len(pairs),
            },
        )
    return len(pairs)


def handoffs_lost(*, now: datetime, min_age: float) -> list[Held]:
    """Queued healings whose heal message the broker holds nowhere any more.

    kombu's Redis transport takes a delivery off the queue's list (BRPOP)
    and records it as unacknowledged a moment later; a worker killed in
    between takes the message with it. Its healing stays PENDING under the
    token it was sent with and would wait out its queue-wait lease
    (``HEALING_DISPATCH_LEASE_SECONDS``, ten minutes). Called when a worker is
    found dead, the only time that happens; one full read of the heal
    queue, so not on every sweep. Rows dispatched less than ``min_age`` ago
    are left out (their message may not be published yet), so are those
    waiting for a retry's countdown (their lease counts from it). At most
    ``HEALING_SWEEP_BATCH``, oldest first: one dead worker drops one message;
    many more missing is a broker that lost its data, and the leases
    re-send them. Empty on other brokers (RabbitMQ requeues what a dead
    consumer held).
    """
    queue = current_app.amqp.router.route({}, HEAL_ORDER)["queue"].name
    try:
        present = broker_tokens(queues=[queue], task_name=HEAL_ORDER)
    except redis.RedisError:  # the rest of the sweep goes on; leases bound the wait
        logger.warning("heal queue not read for lost messages", exc_info=True)
        return []
    if present is None:
        return []
    cutoff = now - timedelta(seconds=min_age)
    queued = (
        HealingAction.objects.filter(
            recovery_status=RecoveryStatus.PENDING,
            next_attempt_at__isnull=True,
            updated_at__lt=cutoff,
        )
        .order_by("updated_at", "id")
        .values_list("id", "claim_token")
    )
    limit = max(settings.HEALING_SWEEP_BATCH, 1)
    dropped: list[Held] = []
    missing = 0
    for healing_id, token in queued.iterator(chunk_size=2000):
        if str(token) in present:
            continue
        missing += 1
        if len(dropped) < limit:
            dropped.append((healing_id, str(token), None))
    if missing > len(dropped):
        logger.warning(
            "queued healings missing from the broker left to their leases",
            extra={"missing": missing, "rescued": len(dropped)},
        )
    return dropped


class HealRequest(Request):
    """``heal_order``'s request in the worker's main process.

    When the pool child running it dies (SIGKILL, the OOM killer), the main
    process knows its holder is gone: its healings (every one a batch had not
    finished) are re-dispatched at once, urgently, instead of after their
    leases. Celery then requeues the original
    message as usual (``reject_on_worker_lost``); it finds a stale token.
    """

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> Any:
        exc = getattr(exc_info, "exception", None)
        exc = getattr(exc, "exc", exc)  # ExceptionWithTraceback
        if isinstance(exc, WorkerLostError) or (
            isinstance(exc, SystemExit | KeyboardInterrupt)
            and not (
                getattr(self, "_already_cancelled", False)
                or getattr(self, "_already_revoked", False)
            )
        ):
            self._rescue()
        return super().on_failure(
            exc_info, send_failed_event=send_failed_event, return_ok=return_ok
        )

    def _rescue(self) -> None:
        carried = heal_pairs(self.args, self.kwargs)
        if not carried or getattr(self, "_healing_rescued", False):
            return
        # Once per request: a rescue of a rescue would take the claim from
        # the re-sent task that is running by then.
        self._healing_rescued = True
        # A batch: the healings it finished are final, the one it was running
        # is IN_PROGRESS under a claim made since it started at the batch's
        # retry count, the rest still carry the tokens it was sent. One it
        # handed to a retry is the retry task's (waiting, or claimed at a
        # higher count) and is left alone.
        held = [(healing_id, token, self.time_start) for healing_id, token in carried]
        ids = [healing_id for healing_id, _ in carried]
        retries = int(self.request_dict.get("retries") or 0)
        try:
            connection_drop_broken()
            with transaction.atomic():
                pairs = healings_rescue(held, now=timezone.now(), retries=retries)
            healings_dispatch(pairs, urgent=True)
        except Exception:  # the leases still bound the wait
            logger.warning("worker-lost rescue failed", extra={"healing_ids": ids}, exc_info=True)
            return
        if pairs:
            logger.warning(
                "pool child lost: its healings re-dispatched",
                extra={"healing_ids": [healing_id for healing_id, _ in pairs]},
            )


def _process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (exited, or a zombie not reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except OSError:
        return False  # no /proc (macOS): kill(0) said it is there


def requests_orphaned_rescue(requests: Iterable[Any]) -> int:
    """Rescue each heal request whose pool child is gone without Celery saying so.

    A pool child SIGKILLed just after it accepted a heal can die before the
    worker's main process has recorded which process took the job: billiard
    then never reports the job lost (no WorkerLostError, so no
    :meth:`HealRequest._rescue`), the request stays active and the healing
    waits for its lease (60 s) and the next sweep. The fault suite's
    recovery-time test met it in about one child kill in three. Every
    liveness beat (``HEALING_WORKER_BEAT_SECONDS``) looks for such requests.
    """
    rescued = 0
    main = os.getpid()
    for request in requests:
        pid = getattr(request, "worker_pid", None)
        rescue = getattr(request, "_rescue", None)  # HealRequest's
        if rescue is None or not pid or pid == main:
            continue  # not a heal, not started yet, or on a thread pool
        if getattr(request, "_healing_rescued", False) or not _process_gone(pid):
            continue
        ids = [healing_id for healing_id, _ in heal_pairs(request.args, request.kwargs)]
        logger.warning(
            "pool child gone with no job-lost report: its heal is rescued",
            extra={"pid": pid, "healing_ids": ids},
        )
        rescue()
        rescued += 1
    return rescued


def _orphaned_requests_check() -> None:
    from celery.worker import state

    try:
        requests = list(state.active_requests)
    except RuntimeError:  # changed size while copied
        return
    requests_orphaned_rescue(requests)


@worker_ready.connect
def _orphaned_requests_watch(sender: Any = None, **kwargs: Any) -> None:
    """In the worker's main process: check on the liveness beat's timer."""
    if settings.HEALING_WORKER_BEAT_SECONDS > 0 and sender is not None:
        sender.timer.call_repeatedly(settings.HEALING_WORKER_BEAT_SECONDS, _orphaned_requests_check)


class HealTask(Task):  # type: ignore[type-arg]
    """``heal_order``'s base: its requests are :class:`HealRequest`."""

    Request = "healing.sweeper:HealRequest"
