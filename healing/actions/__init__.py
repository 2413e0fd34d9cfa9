"""The recovery actions, one module each, and the table that picks one.

Every runner takes the loaded healing, the claim this task holds, the
candidate vendor (reassignment only), the gateway and ``now``, and returns an
``Outcome``. Which actions talk to a vendor decides the claim protocol in
``healing.execution``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from healing.actions.base import Claim, Outcome
from healing.actions.cancel_order import cancel_order_run
from healing.actions.loading import Candidate
from healing.actions.manual_intervention import manual_intervention_run
from healing.actions.reassign_vendor import reassign_vendor_run
from healing.actions.retry_workflow import retry_workflow_run
from healing.models import HealingAction, RecoveryAction
from orders.gateway import VendorGateway

Runner = Callable[..., Outcome]

RUNNERS: dict[str, Runner] = {
    RecoveryAction.REASSIGN_VENDOR: reassign_vendor_run,
    RecoveryAction.RETRY_WORKFLOW: retry_workflow_run,
    RecoveryAction.CANCEL_ORDER: cancel_order_run,
    RecoveryAction.MANUAL_INTERVENTION: manual_intervention_run,
}


class UnknownAction(LookupError):
    """A healing names an action no runner implements (never an escalation by default)."""


def action_run(
    *,
    healing: HealingAction,
    claim: Claim,
    candidate: Candidate | None,
    gateway: VendorGateway,
    now: datetime,
) -> Outcome:
    runner = RUNNERS.get(healing.recovery_action)
    if runner is None:
        raise UnknownAction(f"no runner for recovery action {healing.recovery_action!r}")
    return runner(healing=healing, claim=claim, candidate=candidate, gateway=gateway, now=now)


def action_needs_gateway(*, healing: HealingAction, candidate: Candidate | None) -> bool:
    """Whether the action will message a vendor (then the claim is taken first)."""
    if healing.recovery_action == RecoveryAction.REASSIGN_VENDOR:
        return candidate is not None
    if healing.recovery_action == RecoveryAction.RETRY_WORKFLOW:
        return healing.order.vendor_id is not None
    return False
