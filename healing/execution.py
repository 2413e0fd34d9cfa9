"""Initiate and execute one healing; decide retry or fail; operator requests.

A healing follows docs/DECISIONS.md "Healing flow":

1. **claim** — a conditional UPDATE (expected status and claim token) sets
   IN_PROGRESS, a fresh token and a lease deadline; a duplicate or stale task
   fails it and does nothing;
2. **gateway call** when the action needs one, with no transaction open;
3. **apply and record** — one short transaction: the order change is a
   compare-and-set on (status, stuck clock) of the detected episode, and the
   result is written only if this task still holds the claim.

When no vendor is called, claim and result are one conditional UPDATE inside
the apply transaction. The success path issues at most 8 statements.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.utils import timezone

from config.retry import backoff_seconds
from healing.actions import action_needs_gateway, action_run
from healing.actions.base import (
    STALE,
    Claim,
    Outcome,
    claim_take,
    claim_take_over,
    dispatch_lease_deadline,
    finish_failed,
    healing_finish,
    lease_deadline,
    still_in_episode,
)
from healing.actions.loading import Candidate, ClaimRequest, Loaded, healing_load
from healing.detection import order_attempts
from healing.dispatch import countdown_for_broker, heal_order_send
from healing.errors import ActionNotApplicable, HealingTransientError, NotStuck, StaleClaim
from healing.models import (
    ACTIVE_STATUSES,
    ISSUE_TYPE_FOR_STATUS,
    HealingAction,
    RecoveryAction,
    RecoveryStatus,
    SkipReason,
    StuckRule,
)
from orders.errors import DomainError
from orders.gateway import WORKFLOW_STEP, VendorGateway, get_gateway
from orders.models import OPEN_STATUSES, REASSIGNABLE_STATUSES, Order

logger = logging.getLogger("healing")


# --- Initiate -----------------------------------------------------------------


def action_check(*, status: str, action: str) -> None:
    """Refuse an action that makes no sense for an order in ``status``."""
    if status not in OPEN_STATUSES:
        raise ActionNotApplicable(f"the order is {status}: nothing to heal", field="orderId")
    if action == RecoveryAction.REASSIGN_VENDOR and status not in REASSIGNABLE_STATUSES:
        raise ActionNotApplicable(
            f"an order in {status} is never reassigned", field="recoveryAction"
        )
    if action == RecoveryAction.RETRY_WORKFLOW and status not in WORKFLOW_STEP:
        raise ActionNotApplicable(
            f"an order in {status} has no workflow step", field="recoveryAction"
        )


def _active_healing(order_id: int) -> HealingAction | None:
    return HealingAction.objects.filter(
        order_id=order_id, recovery_status__in=ACTIVE_STATUSES
    ).first()


def _recommended_action(*, order: Order, attempts: int, now: datetime) -> str:
    """The rule's ladder step, if the order is stuck past its threshold."""
    rule = StuckRule.objects.filter(status=order.status).first()
    if rule is None or order.status not in ISSUE_TYPE_FOR_STATUS:
        raise NotStuck(f"order {order.number} is {order.status}: no stuck rule applies")
    stuck_for = now - order.stuck_since
    if stuck_for < timedelta(minutes=rule.threshold_minutes):
        raise NotStuck(
            f"order {order.number} has been {order.status} for "
            f"{int(stuck_for.total_seconds() // 60)} min, under its "
            f"{rule.threshold_minutes} min threshold; name a recoveryAction to act anyway"
        )
    return rule.action_for_attempt(attempts)


def healing_initiate(
    *,
    order: Order,
    trigger: str,
    issue_type: str | None = None,
    recovery_action: str | None = None,
    requested_by: Any = None,
    now: datetime | None = None,
) -> HealingAction:
    """Record a PENDING healing for ``order``; return the active one if it has one.

    Without an explicit action the order must be stuck past its rule's
    threshold and the rule's ladder picks the action.
    """
    now = now or timezone.now()
    existing = _active_healing(order.pk)
    if existing is not None:
        return existing
    expected_issue = ISSUE_TYPE_FOR_STATUS.get(order.status)
    if issue_type is not None and issue_type != expected_issue:
        raise NotStuck(
            f"order {order.number} is {order.status}"
            + (f", so its issue type is {expected_issue}" if expected_issue else "")
            + f", not {issue_type}",
            field="issueType",
        )
    attempts = order_attempts(order_id=order.pk)
    if recovery_action is None:
        recovery_action = _recommended_action(order=order, attempts=attempts, now=now)
    action_check(status=order.status, action=recovery_action)
    try:
        with transaction.atomic():
            return HealingAction.objects.create(
                order=order,
                issue_type=expected_issue or "",
                trigger=trigger,
                issue_detected_at=now,
                detected_status=order.status,
                episode_started_at=order.stuck_since,
                stuck_minutes=max(int((now - order.stuck_since).total_seconds() // 60), 0),
                attempt_number=attempts + 1,
                recovery_action=recovery_action,
                recovery_status=RecoveryStatus.PENDING,
                claim_token=uuid.uuid4(),
                lease_expires_at=dispatch_lease_deadline(now),
                previous_vendor_id=order.vendor_id,
                requested_by=requested_by,
                created_at=now,
                updated_at=now,
            )
    except IntegrityError:
        # Someone else started one between our check and our insert.
        existing = _active_healing(order.pk)
        if existing is None:
            raise
        return existing


# --- Execute ------------------------------------------------------------------


def healing_execute(
    *,
    healing_id: int,
    token: uuid.UUID | str,
    retries: int = 0,
    gateway: VendorGateway | None = None,
) -> Outcome:
    """Run one healing. Idempotent: a duplicate or stale call returns STALE.

    A call whose token is stale may still take the healing over when its
    lease has run out (a redelivered message after its worker died): the
    dead holder's token is swapped, so it can never write.

    Raises ``HealingTransientError`` (with the token to retry with) when the
    vendor gateway failed or the chosen vendor filled up meanwhile.
    """
    now = timezone.now()
    request = ClaimRequest(token, uuid.uuid4(), lease_deadline(now), retries, now)
    loaded = healing_load(healing_id=healing_id, claim=request)
    if loaded is None:
        return Outcome(healing_id, STALE, "no such healing")
    healing, candidate = loaded.healing, loaded.candidate
    if healing.recovery_status not in ACTIVE_STATUSES:
        return Outcome(healing_id, STALE, "claim token is stale or healing already final")
    healing.retry_count = retries
    if loaded.claimed_token is not None:
        # PostgreSQL: the load took the claim (whatever the action).
        claim: Claim | Outcome = Claim(
            loaded.claimed_token, (RecoveryStatus.IN_PROGRESS,), healing.pk, time.monotonic()
        )
    else:
        claim = _claim_for(
            healing, candidate=candidate, token=token, retries=retries, now=now, tried=loaded
        )
    if isinstance(claim, Outcome):
        return claim
    log = {
        "healing_id": healing.pk,
        "order_id": healing.order_id,
        "action": healing.recovery_action,
    }
    try:
        outcome = _execute_claimed(
            healing, claim, candidate=candidate, gateway=gateway or get_gateway(), now=now
        )
    except StaleClaim:
        logger.warning("healing taken over by another task", extra=log)
        return Outcome(healing_id, STALE, "taken over by another task")
    except (OperationalError, InterfaceError) as exc:
        raise HealingTransientError(f"database: {exc}", token=claim.token) from exc
    except DomainError as exc:
        # Not worth a retry: the healing fails now, with a notification.
        try:
            outcome = finish_failed(healing=healing, claim=claim, error=exc.message, now=now)
        except StaleClaim:
            return Outcome(healing_id, STALE, "taken over by another task")
    logger.info("healing finished", extra={**log, "outcome": outcome.status})
    return outcome


def _claim_for(
    healing: HealingAction,
    *,
    candidate: Candidate | None,
    token: uuid.UUID | str,
    retries: int,
    now: datetime,
    tried: Loaded,
) -> Claim | Outcome:
    """The claim this call works under, or the STALE outcome when it has none.

    ``tried``: the load, which on PostgreSQL already tried to claim with
    ``token`` (and lost the row to another task if the token still matched).
    """
    if str(healing.claim_token) == str(token) and tried.claim_tried:
        return Outcome(healing.pk, STALE, "claim token is stale or healing already final")
    if str(healing.claim_token) != str(token):
        expired = healing.lease_expires_at is not None and healing.lease_expires_at < now
        taken_over = claim_take_over(healing=healing, retries=retries, now=now) if expired else None
        if taken_over is None:
            left = None
            if not expired and healing.lease_expires_at is not None:
                left = (healing.lease_expires_at - now).total_seconds()
            return Outcome(
                healing.pk, STALE, "claim token is stale: another task holds it", lease_left=left
            )
        logger.warning(
            "healing taken over: its lease had run out", extra={"healing_id": healing.pk}
        )
        return taken_over
    if still_in_episode(healing) and action_needs_gateway(healing=healing, candidate=candidate):
        # A vendor will be contacted: take the claim first, in its own short
        # transaction, so a duplicate task cannot message the vendor too.
        claimed = claim_take(healing=healing, token=token, retries=retries, now=now)
        if claimed is None:
            return Outcome(healing.pk, STALE, "claim token is stale or healing already final")
        return claimed
    # Nothing leaves the database: claim and result are one conditional
    # UPDATE inside the apply transaction.
    assert healing.claim_token is not None
    return Claim(healing.claim_token, ACTIVE_STATUSES)


def _execute_claimed(
    healing: HealingAction,
    claim: Claim,
    *,
    candidate: Candidate | None,
    gateway: VendorGateway,
    now: datetime,
) -> Outcome:
    if not still_in_episode(healing):
        reason = SkipReason.ORDER_CLOSED if not healing.order.is_open else SkipReason.RECOVERED
        with transaction.atomic():
            healing_finish(
                healing=healing,
                claim=claim,
                status=RecoveryStatus.SKIPPED,
                now=now,
                skip_reason=reason,
            )
        return Outcome(healing.pk, RecoveryStatus.SKIPPED, "order left the detected status")
    return action_run(healing=healing, claim=claim, candidate=candidate, gateway=gateway, now=now)


# --- Retry or fail --------------------------------------------------------------


@dataclass(frozen=True)
class RetryDecision:
    """What a heal task does after a transient error: retry after ``countdown``, or stop."""

    retry: bool
    countdown: float = 0.0


def healing_retry_or_fail(
    *, healing_id: int, token: uuid.UUID | str, error: str, retries: int
) -> RetryDecision:
    """A transient error: retry with backoff, or (retries spent) end FAILED + HEALING_FAILED."""
    if retries >= settings.HEALING_TASK_MAX_RETRIES:
        healing_fail(healing_id=healing_id, token=token, error=error, retries=retries)
        return RetryDecision(retry=False)
    countdown = countdown_for_broker(
        backoff_seconds(
            retries, base=settings.HEALING_TASK_BACKOFF_BASE, cap=settings.HEALING_TASK_BACKOFF_MAX
        )
    )
    healing_retry_schedule(healing_id=healing_id, token=token, countdown=countdown)
    logger.info(
        "healing retry scheduled",
        extra={
            "healing_id": healing_id,
            "retry": retries + 1,
            "countdown": round(countdown, 2),
            "cause": error[:300],
        },
    )
    return RetryDecision(retry=True, countdown=countdown)


def healing_retry_schedule(
    *, healing_id: int, token: uuid.UUID | str, countdown: float, now: datetime | None = None
) -> bool:
    """Show the healing as retrying: its next attempt time, and a lease that
    covers the wait, so the sweeper does not re-dispatch a healing that is
    only waiting for its retry. Best effort: the database may be the cause."""
    now = now or timezone.now()
    next_attempt = now + timedelta(seconds=countdown)
    try:
        return bool(
            HealingAction.objects.filter(
                pk=healing_id, claim_token=token, recovery_status__in=ACTIVE_STATUSES
            ).update(next_attempt_at=next_attempt, lease_expires_at=lease_deadline(next_attempt))
        )
    except (OperationalError, InterfaceError):
        logger.warning("could not record the retry's time", extra={"healing_id": healing_id})
        return False


def healing_fail(*, healing_id: int, token: uuid.UUID | str, error: str, retries: int) -> bool:
    """The last retry failed: end FAILED with a HEALING_FAILED notification."""
    healing = HealingAction.objects.select_related("order").filter(pk=healing_id).first()
    if healing is None:
        return False
    healing.retry_count = retries
    claim = Claim(uuid.UUID(str(token)), ACTIVE_STATUSES)
    try:
        finish_failed(healing=healing, claim=claim, error=error, now=timezone.now())
    except StaleClaim:
        return False
    logger.warning(
        "healing failed after retries",
        extra={"healing_id": healing_id, "order_id": healing.order_id, "outcome": "FAILED"},
    )
    return True


# --- Operator requests and manual resolution ------------------------------------


@dataclass(frozen=True)
class HealReport:
    healing: HealingAction
    retry_scheduled: bool


def healing_request(
    *,
    order: Order,
    requested_by: Any,
    issue_type: str | None = None,
    recovery_action: str | None = None,
    trigger: str = "API",
) -> HealReport:
    """Heal one order now, on an operator's request.

    The healing runs inline so the caller sees its outcome. A transient
    failure (vendor gateway down) is not an error of the request: the healing
    goes to the worker, which retries it with backoff, and the caller gets it
    as it stands. An order that already has an active healing gets that one.
    """
    healing = healing_initiate(
        order=order,
        trigger=trigger,
        issue_type=issue_type,
        recovery_action=recovery_action,
        requested_by=requested_by,
    )
    retry_scheduled = False
    if healing.recovery_status == RecoveryStatus.PENDING:
        try:
            healing_execute(healing_id=healing.pk, token=str(healing.claim_token))
        except HealingTransientError as exc:
            logger.info(
                "manual healing hit a transient error; handed to the worker",
                extra={"healing_id": healing.pk, "error": str(exc)},
            )
            # The inline attempt was the first: the task continues at retry 1.
            heal_order_send(
                healing_id=healing.pk,
                token=str(exc.token),
                order_number=order.number,
                countdown=backoff_seconds(
                    0,
                    base=settings.HEALING_TASK_BACKOFF_BASE,
                    cap=settings.HEALING_TASK_BACKOFF_MAX,
                ),
                retries=1,
            )
            retry_scheduled = True
    healing = HealingAction.objects.select_related("requested_by").get(pk=healing.pk)
    return HealReport(healing=healing, retry_scheduled=retry_scheduled)


def manual_intervention_resolve(
    *, order_id: int, user: Any = None, now: datetime | None = None
) -> int:
    """Hand an order on manual hold back to automation: its attempts restart."""
    now = now or timezone.now()
    return HealingAction.objects.filter(
        order_id=order_id, recovery_status=RecoveryStatus.MANUAL_REQUIRED, resolved_at__isnull=True
    ).update(resolved_at=now, resolved_by=user, updated_at=now)
