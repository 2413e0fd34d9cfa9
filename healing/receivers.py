"""Healing's reactions to what the marketplace announces (``orders.signals``).

orders never imports healing: it sends a signal, and these receivers
(connected in ``HealingConfig.ready``) start the repair.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.dispatch import receiver

from healing import tasks  # noqa: F401  (registers heal_order, which dispatch looks up by name)
from healing.dispatch import healings_dispatch
from healing.execution import healing_initiate
from healing.models import RecoveryAction, RecoveryStatus, Trigger
from orders.models import Order
from orders.signals import order_vendor_declined


@receiver(order_vendor_declined, dispatch_uid="healing.reassign_on_vendor_decline")
def reassign_on_vendor_decline(
    *, order: Order, vendor_id: int, reason: str, now: datetime, **kwargs: Any
) -> None:
    """A declined order is reassigned at once, not after the PENDING threshold.

    Runs inside the decline's transaction: the healing row commits with the
    decline or not at all, and its task is sent only after that commit
    (invariant 6). An order with a healing already in flight keeps that one.
    """
    healing = healing_initiate(
        order=order,
        trigger=Trigger.VENDOR_DECLINED,
        recovery_action=RecoveryAction.REASSIGN_VENDOR,
        now=now,
    )
    if healing.issue_detected_at != now or healing.recovery_status != RecoveryStatus.PENDING:
        return  # not ours: the healing in flight decides
    pair = (healing.pk, str(healing.claim_token))
    transaction.on_commit(
        lambda: healings_dispatch([pair], order_numbers={healing.pk: order.number})
    )
