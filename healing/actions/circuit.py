"""The vendor circuit breaker on the heal path (invariant 14, ``orders.health``).

Before a call: the circuit the load read decides — closed goes, open skips
(the healing ends SKIPPED ``VENDOR_CIRCUIT_OPEN``: not an attempt, not a
failure), open past its cool-down lets exactly one probe go. After a call:
its outcome is recorded into the shared breaker, and an opening or closing
raises or resolves the vendor's one notification (``healing.events``).
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from healing import events
from healing.actions.base import Claim, Outcome, gateway_send, healing_finish
from healing.actions.loading import Candidate
from healing.errors import HealingTransientError
from healing.models import HealingAction, RecoveryStatus, SkipReason
from orders import health
from orders.gateway import Delivery, OutboundMessage, VendorGateway


def circuit_permit(*, target: Candidate, now: datetime) -> str:
    """ALLOW, PROBE (this healing is the half-open probe) or DENY."""
    return health.circuit_permit(view=target.circuit_view, now=now)


def finish_circuit_open(*, healing: HealingAction, claim: Claim, now: datetime) -> Outcome:
    """The vendor's circuit is open: no call, SKIPPED (the next cycle tries again)."""
    with transaction.atomic():
        healing_finish(
            healing=healing,
            claim=claim,
            status=RecoveryStatus.SKIPPED,
            now=now,
            skip_reason=SkipReason.VENDOR_CIRCUIT_OPEN,
        )
    return Outcome(healing.pk, RecoveryStatus.SKIPPED, "vendor circuit open")


def circuit_send(
    *, claim: Claim, gateway: VendorGateway, message: OutboundMessage, target: Candidate
) -> Delivery:
    """``gateway_send``, with its outcome recorded into the vendor's breaker."""
    try:
        delivery = gateway_send(claim=claim, gateway=gateway, message=message)
    except HealingTransientError as exc:
        now = timezone.now()
        with transaction.atomic():
            transition = health.circuit_failure(vendor_id=target.vendor_id, error=str(exc), now=now)
            if transition is not None:
                events.vendor_circuit_opened_event(
                    vendor_id=target.vendor_id,
                    error=str(exc),
                    reopened=transition == "REOPENED",
                    now=now,
                )
        raise
    view = target.circuit_view
    if not view.healthy:
        now = timezone.now()
        with transaction.atomic():
            if health.circuit_success(view=view, now=now) == health.CLOSED:
                events.vendor_circuit_closed_event(vendor_id=target.vendor_id, now=now)
    return delivery
