"""CANCEL_ORDER: cancel the order and refund its credit, exactly once (invariant 5)."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from healing.actions.base import Claim, Outcome, finish_moved_on, healing_finish
from healing.actions.loading import Candidate
from healing.models import HealingAction, RecoveryStatus
from orders import services as order_services
from orders.errors import OrderMovedOn
from orders.gateway import VendorGateway


def cancel_order_run(
    *,
    healing: HealingAction,
    claim: Claim,
    candidate: Candidate | None,
    gateway: VendorGateway,
    now: datetime,
) -> Outcome:
    order = healing.order
    try:
        with transaction.atomic():
            order_services.order_cancel(
                order=order,
                actor=order_services.Actor.healing(),
                reason=f"self-healing {healing.issue_type}: recovery attempts exhausted",
                expected_status=healing.detected_status,
                expected_clock=healing.episode_started_at,
                now=now,
            )
            healing_finish(
                healing=healing,
                claim=claim,
                status=RecoveryStatus.SUCCESS,
                now=now,
                resulting_status=order.status,
            )
    except OrderMovedOn:
        return finish_moved_on(healing=healing, claim=claim, now=now)
    return Outcome(healing.pk, RecoveryStatus.SUCCESS, "cancelled")
