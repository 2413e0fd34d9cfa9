"""What every recovery action shares: the claim, the outcome, the result row.

docs/DECISIONS.md "Claim and lease": a task presents the claim token it was sent
with; the claim is a conditional UPDATE that swaps it for a new one, and the
result is written only if this task still holds that token. Any other writer
(a duplicate delivery, a re-dispatch after the lease ran out) matches nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from healing import events
from healing.errors import HealingTransientError, StaleClaim
from healing.liveness import Heartbeat, heartbeats_enabled
from healing.models import ACTIVE_STATUSES, HealingAction, RecoveryStatus, SkipReason
from orders import sql
from orders.gateway import (
    Delivery,
    DeliveryFailed,
    DeliveryRejected,
    OutboundMessage,
    VendorGateway,
)

STALE = "STALE"  # the outcome of a call that found its claim taken and did nothing


@dataclass(frozen=True)
class Outcome:
    healing_id: int
    status: str  # a RecoveryStatus, or STALE when this call did nothing
    detail: str = ""
    # STALE because another task holds a live lease: seconds until it runs
    # out (a redelivered message comes back then to take the healing over).
    lease_left: float | None = None


@dataclass(frozen=True)
class Claim:
    """The token this task presents and the statuses it may find the row in.

    A claim taken by :func:`claim_take` knows its healing and when its lease
    was last renewed (``time.monotonic()``), so a long vendor call renews it.
    """

    token: uuid.UUID
    statuses: tuple[str, ...]
    healing_id: int | None = None
    renewed_at: float | None = None


def lease_deadline(now: datetime) -> datetime:
    """A claimed healing's lease: its running task renews it (heartbeat)."""
    return now + timedelta(seconds=settings.HEALING_LEASE_SECONDS)


def dispatch_lease_deadline(now: datetime) -> datetime:
    """A dispatched, not yet claimed healing's lease: it covers the queue wait."""
    return now + timedelta(
        seconds=max(settings.HEALING_DISPATCH_LEASE_SECONDS, settings.HEALING_LEASE_SECONDS)
    )


def lease_renew(*, claim: Claim, now: datetime | None = None) -> bool:
    """Push the lease out if this task still holds the claim; False if taken over."""
    if claim.healing_id is None:
        return False
    now = now or timezone.now()
    return bool(
        HealingAction.objects.filter(
            pk=claim.healing_id, claim_token=claim.token, recovery_status__in=claim.statuses
        ).update(lease_expires_at=lease_deadline(now))
    )


def claim_take(
    *,
    healing: HealingAction,
    token: uuid.UUID | str,
    retries: int,
    now: datetime,
    lease_expired: bool = False,
) -> Claim | None:
    """Swap ``token`` for a new one and start the lease: IN_PROGRESS from here.

    ``lease_expired``: only if the row's lease ran out (a take-over)."""
    new_token = uuid.uuid4()
    rows = HealingAction.objects.filter(
        pk=healing.pk, claim_token=token, recovery_status__in=ACTIVE_STATUSES
    )
    if lease_expired:
        rows = rows.filter(lease_expires_at__lt=now)
    claimed = rows.update(
        recovery_status=RecoveryStatus.IN_PROGRESS,
        claim_token=new_token,
        lease_expires_at=lease_deadline(now),
        next_attempt_at=None,
        recovery_attempted_at=Coalesce(F("recovery_attempted_at"), now),
        retry_count=retries,
        updated_at=now,
    )
    if not claimed:
        return None
    return Claim(new_token, (RecoveryStatus.IN_PROGRESS,), healing.pk, time.monotonic())


def claim_take_over(*, healing: HealingAction, retries: int, now: datetime) -> Claim | None:
    """Take over an active healing whose lease ran out (its task died), whatever
    token this task was sent with: the holder's token is swapped for a new one,
    so the dead (or frozen) holder can no longer write. None if the lease is
    alive or someone else took it over first."""
    if healing.claim_token is None:
        return None
    return claim_take(
        healing=healing, token=healing.claim_token, retries=retries, now=now, lease_expired=True
    )


def healing_finish(
    *,
    healing: HealingAction,
    claim: Claim,
    status: str,
    now: datetime,
    skip_reason: str = "",
    error: str = "",
    new_vendor_id: int | None = None,
    resulting_status: str = "",
    admin_notified: bool = False,
) -> None:
    """Write the healing's result if this task still holds it; else roll back."""
    values = {
        "recovery_status": status,
        "retry_count": healing.retry_count,
        "skip_reason": skip_reason,
        "error_message": error,
        "completed_at": now,
        "recovery_duration_seconds": max((now - healing.issue_detected_at).total_seconds(), 0.0),
        "resulting_status": resulting_status or healing.order.status,
        "new_vendor_id": new_vendor_id,
        "admin_notified": admin_notified,
        "updated_at": now,
    }
    params = [sql.prepared(HealingAction, name, value) for name, value in values.items()]
    params += [
        sql.prepared(HealingAction, "recovery_attempted_at", now),
        healing.pk,
        sql.prepared(HealingAction, "claim_token", claim.token),
        *claim.statuses,
    ]

    def taken(updated: int) -> None:
        if not updated:
            raise StaleClaim(f"healing {healing.pk} was taken over")

    statement = _finish_sql(connection.vendor, tuple(values), len(claim.statuses))
    sql.execute(statement, params, check=taken)
    # The snapshot a notification takes after this sees the outcome (issue 20);
    # a refused write raises (now, or at the end of a pipelined block) and
    # the caller's transaction discards the row and this copy alike.
    healing.recovery_status = status
    healing.skip_reason = skip_reason
    healing.error_message = error
    healing.completed_at = now


@cache
def _finish_sql(vendor: str, names: tuple[str, ...], statuses: int) -> str:
    """``healing_finish``'s conditional UPDATE (the claim's token and statuses)."""
    assignments = ", ".join(f"{sql.column(HealingAction, name)} = %s" for name in names)
    attempted = sql.column(HealingAction, "recovery_attempted_at")
    return (
        f"UPDATE {sql.table(HealingAction)} SET {assignments}, "  # noqa: S608
        f"{attempted} = COALESCE({attempted}, %s), "
        f"{sql.column(HealingAction, 'lease_expires_at')} = NULL "
        f"WHERE {sql.column(HealingAction, 'id')} = %s "
        f"AND {sql.column(HealingAction, 'claim_token')} = %s "
        f"AND {sql.column(HealingAction, 'recovery_status')} IN ({', '.join(['%s'] * statuses)})"
    )


def still_in_episode(healing: HealingAction) -> bool:
    """Invariant 4: the order is still in the status and stuck clock it was detected in."""
    order = healing.order
    return (
        order.status == healing.detected_status and order.stuck_since == healing.episode_started_at
    )


_RECORDED = "_healing_recorded"  # set on a Delivery once its row is written


def messages_record(deliveries: Iterable[Delivery]) -> None:
    """Write each delivery's ``vendor_messages`` row, once.

    :func:`gateway_send` records a delivery the moment the vendor has it, in
    its own statement, so the row exists whatever happens to the apply step
    (issue 16: a rolled-back apply lost it); the actions' later calls with the
    same delivery are then no-ops.
    """
    rows = []
    for delivery in deliveries:
        if not getattr(delivery, _RECORDED, False):
            rows.append(delivery.as_row())
            object.__setattr__(delivery, _RECORDED, True)
    # Outside a transaction the row's commit does not wait for the disk
    # (issue 15: it was a heal's second WAL flush, 2-8 ms). What a server crash
    # in the next ~wal_writer_delay could lose is what a worker killed between
    # the vendor's answer and this statement loses anyway: the row of a message
    # the vendor has. Every later synchronous commit, the apply step's above
    # all, flushes this row first, so an applied outcome never lacks its message.
    sql.rows_insert(rows, flush_later=True)


def gateway_send(*, claim: Claim, gateway: VendorGateway, message: OutboundMessage) -> Delivery:
    """Call the gateway outside any transaction, renewing the lease meanwhile.

    The delivery (or the failed attempt) is recorded at once, in its own
    statement. A call that outlasted the renewal interval renews the lease
    once more after it: if the claim was taken over meanwhile (the lease ran
    out, a re-dispatch runs) this task stops here without applying anything.
    """
    beat = Heartbeat(
        interval=settings.HEALING_LEASE_RENEW_SECONDS,
        beat=lambda: lease_renew(claim=claim),
        name=f"lease-{claim.healing_id}",
        enabled=claim.healing_id is not None and heartbeats_enabled(),
    )
    try:
        with beat:
            delivery = gateway.send(message)
    except DeliveryFailed as exc:
        messages_record([exc.delivery])
        raise HealingTransientError(f"vendor gateway: {exc}", token=claim.token) from exc
    except DeliveryRejected as exc:
        # A 4xx: permanent for this message (the healing fails, not retried),
        # but the attempt is part of the audit trail all the same.
        messages_record([exc.delivery])
        raise
    messages_record([delivery])
    renewed = claim.renewed_at
    if claim.healing_id is not None and renewed is not None:
        long_call = time.monotonic() - renewed >= settings.HEALING_LEASE_RENEW_SECONDS
        if (beat.lost or long_call) and not lease_renew(claim=claim):
            raise StaleClaim(f"healing {claim.healing_id}: lease taken over during the call")
    return delivery


def finish_moved_on(
    *,
    healing: HealingAction,
    claim: Claim,
    now: datetime,
    deliveries: Iterable[Delivery] = (),
    detail: str = "order moved on",
) -> Outcome:
    """The order left the detected episode meanwhile: keep its change, end SKIPPED.

    Whatever was sent to a vendor on the way is recorded in the same step.
    """
    with transaction.atomic():
        messages_record(deliveries)
        healing_finish(
            healing=healing,
            claim=claim,
            status=RecoveryStatus.SKIPPED,
            now=now,
            skip_reason=SkipReason.RECOVERED,
        )
    return Outcome(healing.pk, RecoveryStatus.SKIPPED, detail)


def finish_failed(*, healing: HealingAction, claim: Claim, error: str, now: datetime) -> Outcome:
    """End FAILED and raise HEALING_FAILED (HIGH) in the same transaction."""
    with transaction.atomic():
        healing_finish(
            healing=healing,
            claim=claim,
            status=RecoveryStatus.FAILED,
            now=now,
            error=error,
            admin_notified=True,
        )
        events.healing_failed_event(healing=healing, error=error, now=now)
    return Outcome(healing.pk, RecoveryStatus.FAILED, error)
