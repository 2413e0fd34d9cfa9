"""What every recovery action shares: the claim, the outcome, the result row.

DESIGN.md "Claim and lease": a task presents the claim token it was sent
with; the claim is a conditional UPDATE that swaps it for a new one, and the
result is written only if this task still holds that token. Any other writer
(a duplicate delivery, a re-dispatch after the lease ran out) matches nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce

from healing import events
from healing.errors import HealingTransientError, StaleClaim
from healing.models import ACTIVE_STATUSES, HealingAction, RecoveryStatus, SkipReason
from orders.gateway import Delivery, DeliveryFailed, OutboundMessage, VendorGateway
from orders.models import VendorMessage

STALE = "STALE"  # the outcome of a call that found its claim taken and did nothing


@dataclass(frozen=True)
class Outcome:
    healing_id: int
    status: str  # a RecoveryStatus, or STALE when this call did nothing
    detail: str = ""


@dataclass(frozen=True)
class Claim:
    """The token this task presents and the statuses it may find the row in."""

    token: uuid.UUID
    statuses: tuple[str, ...]


def lease_deadline(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.HEALING_LEASE_SECONDS)


def claim_take(
    *, healing: HealingAction, token: uuid.UUID | str, retries: int, now: datetime
) -> Claim | None:
    """Swap ``token`` for a new one and start the lease: IN_PROGRESS from here."""
    new_token = uuid.uuid4()
    claimed = HealingAction.objects.filter(
        pk=healing.pk, claim_token=token, recovery_status__in=ACTIVE_STATUSES
    ).update(
        recovery_status=RecoveryStatus.IN_PROGRESS,
        claim_token=new_token,
        lease_expires_at=lease_deadline(now),
        recovery_attempted_at=Coalesce(F("recovery_attempted_at"), now),
        retry_count=retries,
        updated_at=now,
    )
    return Claim(new_token, (RecoveryStatus.IN_PROGRESS,)) if claimed else None


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
    updated = HealingAction.objects.filter(
        pk=healing.pk, claim_token=claim.token, recovery_status__in=claim.statuses
    ).update(
        recovery_status=status,
        recovery_attempted_at=Coalesce(F("recovery_attempted_at"), now),
        retry_count=healing.retry_count,
        skip_reason=skip_reason,
        error_message=error,
        completed_at=now,
        recovery_duration_seconds=max((now - healing.issue_detected_at).total_seconds(), 0.0),
        resulting_status=resulting_status or healing.order.status,
        new_vendor_id=new_vendor_id,
        lease_expires_at=None,
        admin_notified=admin_notified,
        updated_at=now,
    )
    if not updated:
        raise StaleClaim(f"healing {healing.pk} was taken over")
    # The snapshot a notification takes after this sees the outcome (issue 20).
    healing.recovery_status = status
    healing.skip_reason = skip_reason
    healing.error_message = error
    healing.completed_at = now


def still_in_episode(healing: HealingAction) -> bool:
    """Invariant 4: the order is still in the status and stuck clock it was detected in."""
    order = healing.order
    return (
        order.status == healing.detected_status and order.stuck_since == healing.episode_started_at
    )


def messages_record(deliveries: Iterable[Delivery]) -> None:
    VendorMessage.objects.bulk_create([delivery.as_row() for delivery in deliveries])


def gateway_send(*, claim: Claim, gateway: VendorGateway, message: OutboundMessage) -> Delivery:
    """Call the gateway outside any transaction; a failed call is recorded, then retried."""
    try:
        return gateway.send(message)
    except DeliveryFailed as exc:
        messages_record([exc.delivery])
        raise HealingTransientError(f"vendor gateway: {exc}", token=claim.token) from exc


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
