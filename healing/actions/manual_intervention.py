"""MANUAL_INTERVENTION: put the order on manual hold and ask a person (HIGH).

The healing ends MANUAL_REQUIRED; the order stays out of detection until an
admin resolves the notification (``healing.execution.manual_intervention_resolve``).
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from healing import events
from healing.actions.base import Claim, Outcome, healing_finish
from healing.actions.loading import Candidate
from healing.models import HealingAction, RecoveryStatus
from orders.gateway import VendorGateway


def manual_intervention_run(
    *,
    healing: HealingAction,
    claim: Claim,
    candidate: Candidate | None,
    gateway: VendorGateway,
    now: datetime,
) -> Outcome:
    with transaction.atomic():
        healing_finish(
            healing=healing,
            claim=claim,
            status=RecoveryStatus.MANUAL_REQUIRED,
            now=now,
            admin_notified=True,
            resulting_status=healing.order.status,
        )
        events.manual_intervention_required_event(healing=healing, now=now)
    return Outcome(healing.pk, RecoveryStatus.MANUAL_REQUIRED, "manual intervention requested")
