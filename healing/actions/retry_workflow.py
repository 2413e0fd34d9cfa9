"""RETRY_WORKFLOW: re-send the status's workflow step to the vendor, restart the clock."""

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
from healing.models import HealingAction, RecoveryStatus
from orders import services as order_services
from orders import sql
from orders.errors import OrderMovedOn
from orders.gateway import WORKFLOW_STEP, OutboundMessage, VendorGateway
from orders.health import DENY


def retry_workflow_run(
    *,
    healing: HealingAction,
    claim: Claim,
    candidate: Candidate | None,
    gateway: VendorGateway,
    now: datetime,
) -> Outcome:
    order = healing.order
    if order.vendor_id is None:
        return finish_failed(healing=healing, claim=claim, error="no vendor to contact", now=now)
    # The order's own vendor, with the circuit state the load read.
    target = candidate or Candidate(
        order.vendor_id, order.vendor.webhook_url if order.vendor else ""
    )
    if circuit_permit(target=target, now=now) == DENY:
        return finish_circuit_open(healing=healing, claim=claim, now=now)
    step = OutboundMessage(
        order_id=order.pk,
        order_number=order.number,
        vendor_id=order.vendor_id,
        kind=WORKFLOW_STEP[healing.detected_status],
        webhook_url=order.vendor.webhook_url if order.vendor else "",
        healing_id=healing.pk,
    )
    delivery = circuit_send(claim=claim, gateway=gateway, message=step, target=target)
    try:
        with transaction.atomic(), sql.pipelined():
            order_services.order_restart_clock(
                order=order,
                actor=order_services.Actor.healing(),
                reason=f"self-healing {healing.issue_type}: re-sent {step.kind}",
                expected_status=healing.detected_status,
                expected_clock=healing.episode_started_at,
                now=now,
            )
            messages_record([delivery])
            healing_finish(
                healing=healing,
                claim=claim,
                status=RecoveryStatus.SUCCESS,
                now=now,
                # The status the restart kept (its check runs at the block's end).
                resulting_status=healing.detected_status,
            )
    except OrderMovedOn:
        return finish_moved_on(healing=healing, claim=claim, now=now, deliveries=[delivery])
    return Outcome(healing.pk, RecoveryStatus.SUCCESS, f"re-sent {step.kind}")
