"""Expired leases: re-dispatch lost healings, from the cycle and between cycles.

A healing whose lease ran out lost its task (a killed worker, a lost message,
a frozen process): :func:`leases_redispatch` gives it a new claim token and a
fresh dispatch lease, so whatever the old task does if it ever wakes up
changes nothing (DESIGN.md invariant 7). The cycle calls it for what it
detected; the beat task :func:`leases_sweep` calls it every
``HEALING_SWEEP_SECONDS`` in bounded batches, so a lost healing waits about
one lease, not the next detection cycle.

Rows are locked with ``FOR UPDATE SKIP LOCKED``: a row some other
transaction holds (a frozen backend inside its apply transaction, a
concurrent sweep) is skipped this time, never waited on.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from healing.actions.base import dispatch_lease_deadline
from healing.dispatch import healings_dispatch
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
    locked = rows.select_for_update(skip_locked=True).order_by("lease_expires_at", "id")
    if limit is not None:
        locked = locked[:limit]
    lease = dispatch_lease_deadline(now)
    sent = []
    for healing_id in list(locked.values_list("id", flat=True)):
        token = uuid.uuid4()
        # Locked above, so no wait; the conditions stay for SQLite (no locks).
        if HealingAction.objects.filter(
            pk=healing_id, recovery_status__in=ACTIVE_STATUSES, lease_expires_at__lt=now
        ).update(
            recovery_status=RecoveryStatus.PENDING,
            claim_token=token,
            lease_expires_at=lease,
            next_attempt_at=None,
            updated_at=now,
        ):
            sent.append((healing_id, str(token)))
    return sent


@dataclass(frozen=True)
class SweepResult:
    redispatched: int
    batches: int

    def as_dict(self) -> dict[str, int]:
        return {"redispatched": self.redispatched, "batches": self.batches}


def leases_sweep(*, now: datetime | None = None, dispatch: Dispatch | None = None) -> SweepResult:
    """Re-dispatch every expired lease, ``HEALING_SWEEP_BATCH`` rows a transaction.

    Each batch's tasks leave after its transaction commits (invariant 6). At
    most ``HEALING_SWEEP_MAX_BATCHES`` batches a run; the next run goes on.
    """
    now = now or timezone.now()
    send = dispatch or healings_dispatch
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
    return SweepResult(redispatched=total, batches=batches)
