"""REASSIGN_VENDOR: offer the order to the best other vendor, then move it there.

The offer goes out with no transaction open; the reassignment is then a
compare-and-set on the detected episode. If the old vendor acted meanwhile,
its change wins, the offer is withdrawn and both messages are recorded.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from healing.actions.base import (
    Claim,
    Outcome,
    finish_failed,
    finish_moved_on,
    healing_finish,
    messages_record,
)
from healing.actions.circuit import circuit_permit, circuit_send, finish_circuit_open
from healing.actions.loading import Candidate
from healing.errors import HealingTransientError
from healing.models import HealingAction, RecoveryStatus
from orders import services as order_services
from orders import sql
from orders.errors import NoVendorAvailable, OrderMovedOn
from orders.gateway import Delivery, DeliveryFailed, OutboundMessage, VendorGateway
from orders.health import DENY
from orders.models import MessageKind, OrderStatus


def _message(*, healing: HealingAction, candidate: Candidate, kind: str) -> OutboundMessage:
    """The healing's message of ``kind`` to the candidate vendor."""
    return OutboundMessage(
        order_id=healing.order.pk,
        order_number=healing.order.number,
        vendor_id=candidate.vendor_id,
        kind=kind,
        webhook_url=candidate.webhook_url,
        healing_id=healing.pk,
    )


def _send_recorded(*, gateway: VendorGateway, message: OutboundMessage) -> Delivery:
    """Send ``message``; a failed delivery is returned (to be recorded), not raised."""
    try:
        return gateway.send(message)
    except DeliveryFailed as exc:
        return exc.delivery


def reassign_vendor_run(
    *,
    healing: HealingAction,
    claim: Claim,
    candidate: Candidate | None,
    gateway: VendorGateway,
    now: datetime,
) -> Outcome:
    if candidate is None:
        return finish_failed(
            healing=healing, claim=claim, error="no alternative vendor available", now=now
        )
    # Open circuits are never candidates; one past its cool-down is, and then
    # this offer is its one half-open probe (or, lost to another, a skip).
    if circuit_permit(target=candidate, now=now) == DENY:
        return finish_circuit_open(healing=healing, claim=claim, now=now)
    offer = _message(healing=healing, candidate=candidate, kind=MessageKind.OFFER)
    delivery = circuit_send(claim=claim, gateway=gateway, message=offer, target=candidate)
    try:
        with transaction.atomic(), sql.pipelined():
            # The healing's own rows first, the reassignment (which ends on
            # the new vendor's row, the one every concurrent reassignment
            # wants) last, so that lock is held for the commit only. Any
            # failure below rolls the result back with the reassignment.
            # On PostgreSQL the five statements go in one round trip.
            messages_record([delivery])
            healing_finish(
                healing=healing,
                claim=claim,
                status=RecoveryStatus.SUCCESS,
                now=now,
                new_vendor_id=candidate.vendor_id,
                resulting_status=OrderStatus.PENDING,
            )
            order_services.order_reassign_vendor(
                order=healing.order,
                # The loaded row spares orders.services a read for its due time.
                vendor=candidate.vendor if candidate.vendor is not None else candidate.vendor_id,
                actor=order_services.Actor.healing(),
                reason=f"self-healing {healing.issue_type}: vendor did not progress the order",
                expected_status=healing.detected_status,
                expected_clock=healing.episode_started_at,
                now=now,
            )
    except OrderMovedOn:
        withdraw = _message(healing=healing, candidate=candidate, kind=MessageKind.WITHDRAW)
        return finish_moved_on(
            healing=healing,
            claim=claim,
            now=now,
            deliveries=[delivery, _send_recorded(gateway=gateway, message=withdraw)],
            detail="order moved on; offer withdrawn",
        )
    except NoVendorAvailable as exc:
        # The candidate filled up since the load: another candidate next time.
        # The offer that went out is recorded whatever happens to the retry,
        # and withdrawn as when the order moved on: the vendor must not keep
        # an offer for an order that will go to someone else.
        withdraw = _message(healing=healing, candidate=candidate, kind=MessageKind.WITHDRAW)
        messages_record([delivery, _send_recorded(gateway=gateway, message=withdraw)])
        raise HealingTransientError(str(exc), token=claim.token) from exc
    return Outcome(
        healing.pk, RecoveryStatus.SUCCESS, f"reassigned to vendor {candidate.vendor_id}"
    )
