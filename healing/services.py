"""Writes of the healing engine: initiate, execute, fail, resolve, run a cycle.

A healing follows DESIGN.md's protocol:

1. **claim** — one conditional UPDATE (expected status and claim token) sets
   IN_PROGRESS, a fresh token and a lease deadline; a duplicate or stale task
   fails it and does nothing;
2. **gateway call** when the action needs one, with no transaction open;
3. **apply and record** — one short transaction: the order change is a
   compare-and-set on (status, stuck clock) of the detected episode, and the
   healing's result is written only if this task still holds the claim.

The success path issues at most 8 statements for any action.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connections,
    transaction,
)
from django.db.models import Case, CharField, Count, F, OuterRef, QuerySet, Subquery, When
from django.db.models.functions import Coalesce
from django.db.models.query import get_related_populators
from django.utils import timezone

from healing.detection import (
    expired_active_healings,
    open_orders_count,
    order_attempts,
    stuck_orders_detect,
)
from healing.metrics import metrics_rollup_after_cycle
from healing.models import (
    ACTIVE_STATUSES,
    ISSUE_TYPE_FOR_STATUS,
    CycleStatus,
    HealingAction,
    HealingCycle,
    RecoveryAction,
    RecoveryStatus,
    SkipReason,
    StuckRule,
    Trigger,
)
from healing.selectors import healing_history
from notifications.content import healing_failed_content, manual_required_content
from notifications.models import NotificationType, Severity
from notifications.services import notification_raise, notification_resolve_condition
from orders import services as order_services
from orders.errors import DomainError, NoVendorAvailable, OrderMovedOn, TransientError
from orders.gateway import (
    WORKFLOW_STEP,
    DeliveryFailed,
    OutboundMessage,
    VendorGateway,
    get_gateway,
)
from orders.models import (
    OPEN_STATUSES,
    REASSIGNABLE_STATUSES,
    MessageKind,
    Order,
    OrderStatus,
    VendorMessage,
)
from orders.selectors import vendor_candidates

logger = logging.getLogger("healing")

# Actions the blast-radius guard pauses; RETRY_WORKFLOW still runs.
GUARDED_ACTIONS = frozenset(
    {
        RecoveryAction.REASSIGN_VENDOR,
        RecoveryAction.CANCEL_ORDER,
        RecoveryAction.MANUAL_INTERVENTION,
    }
)


class NotStuck(DomainError):
    code = "not_stuck"


class ActionNotApplicable(DomainError):
    code = "action_not_applicable"


class HealingTransientError(TransientError):
    """A retryable failure; carries the claim token the retry must present."""

    def __init__(self, message: str, *, token: uuid.UUID) -> None:
        super().__init__(message)
        self.token = token


class _StaleClaim(Exception):
    """This task no longer holds the healing: roll the apply step back."""


@dataclass(frozen=True)
class Outcome:
    healing_id: int
    status: str  # a RecoveryStatus, or "STALE" when this call did nothing
    detail: str = ""


# --- Initiate -----------------------------------------------------------------


def _lease_deadline(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.HEALING_LEASE_SECONDS)


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
    existing = HealingAction.objects.filter(
        order_id=order.pk, recovery_status__in=ACTIVE_STATUSES
    ).first()
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
    rule = StuckRule.objects.filter(status=order.status).first()
    attempts = order_attempts(order_id=order.pk)
    if recovery_action is None:
        if rule is None or expected_issue is None:
            raise NotStuck(f"order {order.number} is {order.status}: no stuck rule applies")
        stuck_for = now - order.stuck_since
        if stuck_for < timedelta(minutes=rule.threshold_minutes):
            raise NotStuck(
                f"order {order.number} has been {order.status} for "
                f"{int(stuck_for.total_seconds() // 60)} min, under its "
                f"{rule.threshold_minutes} min threshold; name a recoveryAction to act anyway"
            )
        recovery_action = rule.action_for_attempt(attempts)
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
                lease_expires_at=_lease_deadline(now),
                previous_vendor_id=order.vendor_id,
                requested_by=requested_by,
                created_at=now,
                updated_at=now,
            )
    except IntegrityError:
        # Someone else started one between our check and our insert.
        existing = HealingAction.objects.filter(
            order_id=order.pk, recovery_status__in=ACTIVE_STATUSES
        ).first()
        if existing is None:
            raise
        return existing


# --- Execute ------------------------------------------------------------------


def _load_queryset() -> QuerySet[HealingAction]:
    """The healing, its order and vendor, and (for a reassignment) the best
    candidate vendor — one statement."""
    candidates = vendor_candidates(order_id=OuterRef("order_id"))
    reassigning = When(
        recovery_action=RecoveryAction.REASSIGN_VENDOR, then=Subquery(candidates.values("id")[:1])
    )
    return HealingAction.objects.select_related("order", "order__vendor").annotate(
        candidate_vendor_id=Case(reassigning, default=None),
        candidate_webhook_url=Case(
            When(
                recovery_action=RecoveryAction.REASSIGN_VENDOR,
                then=Subquery(candidates.values("webhook_url")[:1]),
            ),
            default=None,
            output_field=CharField(),
        ),
    )


# A pk no healing has: marks where the healing id goes in the compiled load.
_LOAD_SENTINEL = -7_000_000_001


@dataclass(frozen=True)
class _LoadPlan:
    """The load statement compiled once per process and database.

    Building and compiling that queryset (two correlated candidate subqueries,
    two joins) was over half of a healing's CPU time in a worker, for SQL that
    only differs by the healing id. The rows are turned into model instances
    the way Django's ModelIterable does, from the compiler's own column map.
    """

    sql: str
    params: tuple[Any, ...]
    id_index: int
    compiler: Any
    init_list: list[str]
    fields: slice
    populators: list[Any]
    annotations: dict[str, int]
    converters: dict[int, Any]

    @classmethod
    def compile(cls, alias: str) -> _LoadPlan:
        compiler = _load_queryset().filter(pk=_LOAD_SENTINEL).query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        select, klass_info = compiler.select, compiler.klass_info
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        return cls(
            sql=sql,
            params=tuple(params),
            id_index=list(params).index(_LOAD_SENTINEL),
            compiler=compiler,
            init_list=[column[0].target.attname for column in select[start:end]],
            fields=slice(start, end),
            populators=get_related_populators(klass_info, select, alias),
            annotations=dict(compiler.annotation_col_map),
            converters=compiler.get_converters([column[0] for column in select]),
        )


_load_plans: dict[tuple[str, str], _LoadPlan] = {}


def _load(healing_id: int) -> HealingAction | None:
    """The healing, its order and vendor, and (for a reassignment) the best
    candidate vendor — one statement, compiled once per process."""
    db = DEFAULT_DB_ALIAS
    conn = connections[db]
    key = (db, conn.vendor)
    plan = _load_plans.get(key)
    if plan is None:
        plan = _load_plans[key] = _LoadPlan.compile(db)
    params = list(plan.params)
    params[plan.id_index] = healing_id
    with conn.cursor() as cursor:
        cursor.execute(plan.sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    if plan.converters:
        row = next(iter(plan.compiler.apply_converters([row], plan.converters)))
    healing = HealingAction.from_db(db, plan.init_list, row[plan.fields])
    for populator in plan.populators:
        populator.populate(row, healing)
    for name, position in plan.annotations.items():
        setattr(healing, name, row[position])
    return healing


def _claim(
    healing: HealingAction, token: uuid.UUID | str, *, retries: int, now: datetime
) -> uuid.UUID | None:
    new_token = uuid.uuid4()
    claimed = HealingAction.objects.filter(
        pk=healing.pk, claim_token=token, recovery_status__in=ACTIVE_STATUSES
    ).update(
        recovery_status=RecoveryStatus.IN_PROGRESS,
        claim_token=new_token,
        lease_expires_at=_lease_deadline(now),
        recovery_attempted_at=Coalesce(F("recovery_attempted_at"), now),
        retry_count=retries,
        updated_at=now,
    )
    return new_token if claimed else None


@dataclass(frozen=True)
class _Claim:
    """The token this task presents and the statuses it may find the row in."""

    token: uuid.UUID
    statuses: tuple[str, ...]


def _needs_gateway(healing: HealingAction) -> bool:
    if not _still_in_episode(healing):
        return False
    if healing.recovery_action == RecoveryAction.REASSIGN_VENDOR:
        return healing.candidate_vendor_id is not None  # type: ignore[attr-defined]
    if healing.recovery_action == RecoveryAction.RETRY_WORKFLOW:
        return healing.order.vendor_id is not None
    return False


def _finish(
    healing: HealingAction,
    claim: _Claim,
    *,
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
        raise _StaleClaim(f"healing {healing.pk} was taken over")
    healing.recovery_status = status


def _still_in_episode(healing: HealingAction) -> bool:
    order = healing.order
    return (
        order.status == healing.detected_status and order.stuck_since == healing.episode_started_at
    )


def _record_messages(deliveries: Iterable[Any]) -> None:
    VendorMessage.objects.bulk_create([d.as_row() for d in deliveries])


def _fail_with_notification(
    healing: HealingAction, claim: _Claim, *, error: str, now: datetime
) -> None:
    """End FAILED and raise HEALING_FAILED (HIGH) in the same transaction."""
    order = healing.order
    history = healing_history(order_id=order.pk)
    title, message, details = healing_failed_content(
        order=order, healing=healing, error=error, history=history, now=now
    )
    _finish(healing, claim, status=RecoveryStatus.FAILED, now=now, error=error, admin_notified=True)
    notification_raise(
        notification_type=NotificationType.HEALING_FAILED,
        severity=Severity.HIGH,
        title=title,
        message=message,
        details=details,
        order_id=order.pk,
        healing_id=healing.pk,
        now=now,
    )


def healing_execute(
    *,
    healing_id: int,
    token: uuid.UUID | str,
    retries: int = 0,
    gateway: VendorGateway | None = None,
) -> Outcome:
    """Run one healing. Idempotent: a duplicate or stale call returns STALE.

    Raises ``HealingTransientError`` (with the token to retry with) when the
    vendor gateway failed or the chosen vendor filled up meanwhile.
    """
    healing = _load(healing_id)
    if healing is None:
        return Outcome(healing_id, "STALE", "no such healing")
    if str(healing.claim_token) != str(token) or healing.recovery_status not in ACTIVE_STATUSES:
        return Outcome(healing_id, "STALE", "claim token is stale or healing already final")
    now = timezone.now()
    healing.retry_count = retries
    if _needs_gateway(healing):
        # A vendor will be contacted: take the claim first, in its own short
        # transaction, so a duplicate task cannot message the vendor too.
        new_token = _claim(healing, token, retries=retries, now=now)
        if new_token is None:
            return Outcome(healing_id, "STALE", "claim token is stale or healing already final")
        claim = _Claim(new_token, (RecoveryStatus.IN_PROGRESS,))
    else:
        # Nothing leaves the database: claim and result are one conditional
        # UPDATE inside the apply transaction.
        claim = _Claim(healing.claim_token, ACTIVE_STATUSES)
    log = {
        "healing_id": healing.pk,
        "order_id": healing.order_id,
        "action": healing.recovery_action,
    }
    try:
        outcome = _execute_claimed(healing, claim, gateway=gateway or get_gateway(), now=now)
    except _StaleClaim:
        logger.warning("healing taken over by another task", extra=log)
        return Outcome(healing_id, "STALE", "taken over by another task")
    except (OperationalError, InterfaceError) as exc:
        raise HealingTransientError(f"database: {exc}", token=claim.token) from exc
    except DomainError as exc:
        # Not worth a retry: the healing fails now, with a notification.
        try:
            with transaction.atomic():
                _fail_with_notification(healing, claim, error=exc.message, now=now)
        except _StaleClaim:
            return Outcome(healing_id, "STALE", "taken over by another task")
        outcome = Outcome(healing_id, RecoveryStatus.FAILED, exc.message)
    logger.info("healing finished", extra={**log, "outcome": outcome.status})
    return outcome


def _execute_claimed(
    healing: HealingAction, claim: _Claim, *, gateway: VendorGateway, now: datetime
) -> Outcome:
    order = healing.order
    if not _still_in_episode(healing):
        with transaction.atomic():
            _finish(
                healing,
                claim,
                status=RecoveryStatus.SKIPPED,
                now=now,
                skip_reason=SkipReason.ORDER_CLOSED if not order.is_open else SkipReason.RECOVERED,
            )
        return Outcome(healing.pk, RecoveryStatus.SKIPPED, "order left the detected status")

    action = healing.recovery_action
    if action == RecoveryAction.REASSIGN_VENDOR:
        return _reassign(healing, claim, gateway=gateway, now=now)
    if action == RecoveryAction.RETRY_WORKFLOW:
        return _retry_workflow(healing, claim, gateway=gateway, now=now)
    if action == RecoveryAction.CANCEL_ORDER:
        return _cancel(healing, claim, now=now)
    return _escalate(healing, claim, now=now)


def _send(
    healing: HealingAction, claim: _Claim, gateway: VendorGateway, message: OutboundMessage
) -> Any:
    """Call the gateway outside any transaction; a failure is recorded, then retried."""
    try:
        return gateway.send(message)
    except DeliveryFailed as exc:
        _record_messages([exc.delivery])
        raise HealingTransientError(f"vendor gateway: {exc}", token=claim.token) from exc


def _reassign(
    healing: HealingAction, claim: _Claim, *, gateway: VendorGateway, now: datetime
) -> Outcome:
    order = healing.order
    candidate_id = healing.candidate_vendor_id  # type: ignore[attr-defined]
    if candidate_id is None:
        with transaction.atomic():
            _fail_with_notification(
                healing, claim, error="no alternative vendor available", now=now
            )
        return Outcome(healing.pk, RecoveryStatus.FAILED, "no alternative vendor available")
    offer = OutboundMessage(
        order_id=order.pk,
        order_number=order.number,
        vendor_id=candidate_id,
        kind=MessageKind.OFFER,
        webhook_url=healing.candidate_webhook_url or "",  # type: ignore[attr-defined]
        healing_id=healing.pk,
    )
    delivery = _send(healing, claim, gateway, offer)
    try:
        with transaction.atomic():
            # The healing's own rows first, the reassignment (which ends on
            # the new vendor's row, the one every concurrent reassignment
            # wants) last, so that lock is held for the commit only. Any
            # failure below rolls the result back with the reassignment.
            _record_messages([delivery])
            _finish(
                healing,
                claim,
                status=RecoveryStatus.SUCCESS,
                now=now,
                new_vendor_id=candidate_id,
                resulting_status=OrderStatus.PENDING,
            )
            order_services.order_reassign_vendor(
                order=order,
                vendor=candidate_id,
                actor=order_services.Actor.healing(),
                reason=f"self-healing {healing.issue_type}: vendor did not progress the order",
                expected_status=healing.detected_status,
                expected_clock=healing.episode_started_at,
                now=now,
            )
    except OrderMovedOn:
        # The vendor acted while we were asking another one: keep its change,
        # withdraw our offer, and record both messages.
        withdraw = OutboundMessage(
            order_id=order.pk,
            order_number=order.number,
            vendor_id=candidate_id,
            kind=MessageKind.WITHDRAW,
            webhook_url=offer.webhook_url,
            healing_id=healing.pk,
        )
        try:
            withdrawal = gateway.send(withdraw)
        except DeliveryFailed as exc:
            withdrawal = exc.delivery
        with transaction.atomic():
            _record_messages([delivery, withdrawal])
            _finish(
                healing,
                claim,
                status=RecoveryStatus.SKIPPED,
                now=now,
                skip_reason=SkipReason.RECOVERED,
                resulting_status="",
            )
        return Outcome(healing.pk, RecoveryStatus.SKIPPED, "order moved on; offer withdrawn")
    except NoVendorAvailable as exc:
        # The candidate filled up since the load: another candidate next time.
        raise HealingTransientError(str(exc), token=claim.token) from exc
    return Outcome(healing.pk, RecoveryStatus.SUCCESS, f"reassigned to vendor {candidate_id}")


def _retry_workflow(
    healing: HealingAction, claim: _Claim, *, gateway: VendorGateway, now: datetime
) -> Outcome:
    order = healing.order
    if order.vendor_id is None:
        with transaction.atomic():
            _fail_with_notification(healing, claim, error="no vendor to contact", now=now)
        return Outcome(healing.pk, RecoveryStatus.FAILED, "no vendor to contact")
    step = OutboundMessage(
        order_id=order.pk,
        order_number=order.number,
        vendor_id=order.vendor_id,
        kind=WORKFLOW_STEP[healing.detected_status],
        webhook_url=order.vendor.webhook_url if order.vendor else "",
        healing_id=healing.pk,
    )
    delivery = _send(healing, claim, gateway, step)
    try:
        with transaction.atomic():
            order_services.order_restart_clock(
                order=order,
                actor=order_services.Actor.healing(),
                reason=f"self-healing {healing.issue_type}: re-sent {step.kind}",
                expected_status=healing.detected_status,
                expected_clock=healing.episode_started_at,
                now=now,
            )
            _record_messages([delivery])
            _finish(
                healing,
                claim,
                status=RecoveryStatus.SUCCESS,
                now=now,
                resulting_status=order.status,
            )
    except OrderMovedOn:
        with transaction.atomic():
            _record_messages([delivery])
            _finish(
                healing,
                claim,
                status=RecoveryStatus.SKIPPED,
                now=now,
                skip_reason=SkipReason.RECOVERED,
                resulting_status="",
            )
        return Outcome(healing.pk, RecoveryStatus.SKIPPED, "order moved on")
    return Outcome(healing.pk, RecoveryStatus.SUCCESS, f"re-sent {step.kind}")


def _cancel(healing: HealingAction, claim: _Claim, *, now: datetime) -> Outcome:
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
            _finish(
                healing,
                claim,
                status=RecoveryStatus.SUCCESS,
                now=now,
                resulting_status=order.status,
            )
    except OrderMovedOn:
        with transaction.atomic():
            _finish(
                healing,
                claim,
                status=RecoveryStatus.SKIPPED,
                now=now,
                skip_reason=SkipReason.RECOVERED,
                resulting_status="",
            )
        return Outcome(healing.pk, RecoveryStatus.SKIPPED, "order moved on")
    return Outcome(healing.pk, RecoveryStatus.SUCCESS, "cancelled")


def _escalate(healing: HealingAction, claim: _Claim, *, now: datetime) -> Outcome:
    order = healing.order
    history = healing_history(order_id=order.pk)
    title, message, details = manual_required_content(
        order=order, healing=healing, history=history, now=now
    )
    with transaction.atomic():
        _finish(
            healing,
            claim,
            status=RecoveryStatus.MANUAL_REQUIRED,
            now=now,
            admin_notified=True,
            resulting_status=order.status,
        )
        notification_raise(
            notification_type=NotificationType.MANUAL_INTERVENTION_REQUIRED,
            severity=Severity.HIGH,
            title=title,
            message=message,
            details=details,
            order_id=order.pk,
            healing_id=healing.pk,
            now=now,
        )
    return Outcome(healing.pk, RecoveryStatus.MANUAL_REQUIRED, "escalated to an admin")


def healing_fail(*, healing_id: int, token: uuid.UUID | str, error: str, retries: int) -> bool:
    """The last retry failed: end FAILED with a HEALING_FAILED notification."""
    healing = HealingAction.objects.select_related("order").filter(pk=healing_id).first()
    if healing is None:
        return False
    healing.retry_count = retries
    claim = _Claim(uuid.UUID(str(token)), ACTIVE_STATUSES)
    try:
        with transaction.atomic():
            _fail_with_notification(healing, claim, error=error, now=timezone.now())
    except _StaleClaim:
        return False
    logger.warning(
        "healing failed after retries",
        extra={"healing_id": healing_id, "order_id": healing.order_id, "outcome": "FAILED"},
    )
    return True


def healing_manual_resolve(*, order_id: int, user: Any = None, now: datetime | None = None) -> int:
    """Hand an order on manual hold back to automation: its attempts restart."""
    now = now or timezone.now()
    return HealingAction.objects.filter(
        order_id=order_id, recovery_status=RecoveryStatus.MANUAL_REQUIRED, resolved_at__isnull=True
    ).update(resolved_at=now, resolved_by=user, updated_at=now)


# --- Cycle --------------------------------------------------------------------


@dataclass
class CycleResult:
    ran: bool
    cycle_id: int | None = None
    detected: int = 0
    dispatched: int = 0
    redispatched: int = 0
    healed: int = 0
    failed: int = 0
    skipped: int = 0
    escalated: int = 0
    pending: int = 0
    guard_tripped: bool = False
    dry_run: int = 0
    duration_ms: float = 0.0
    reason: str = ""
    by_action: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Dispatch = Callable[[list[tuple[int, str]]], None]


def guard_trips(*, stuck: int, open_orders: int) -> bool:
    """DESIGN.md's blast-radius guard."""
    if stuck < settings.HEALING_GUARD_MIN_STUCK or open_orders <= 0:
        return False
    return stuck / open_orders >= settings.HEALING_GUARD_MAX_SHARE


def _cycle_acquire(*, trigger: str, now: datetime) -> HealingCycle | None:
    stale_before = now - timedelta(seconds=settings.HEALING_CYCLE_LOCK_SECONDS)
    HealingCycle.objects.filter(status=CycleStatus.RUNNING, started_at__lt=stale_before).update(
        status=CycleStatus.ABANDONED, finished_at=now, error="lock expired: the cycle died"
    )
    try:
        with transaction.atomic():
            return HealingCycle.objects.create(started_at=now, trigger=trigger)
    except IntegrityError:
        return None


def cycle_refresh_counts(*, cycle: HealingCycle) -> HealingCycle:
    """Recount a cycle's outcomes from its healing rows (they finish after it)."""
    by_status = dict(
        HealingAction.objects.filter(cycle=cycle)
        .order_by()
        .values_list("recovery_status")
        .annotate(n=Count("id"))
    )
    cycle.healed = by_status.get(RecoveryStatus.SUCCESS, 0)
    cycle.failed = by_status.get(RecoveryStatus.FAILED, 0)
    cycle.skipped = by_status.get(RecoveryStatus.SKIPPED, 0)
    cycle.escalated = by_status.get(RecoveryStatus.MANUAL_REQUIRED, 0)
    cycle.pending = by_status.get(RecoveryStatus.PENDING, 0) + by_status.get(
        RecoveryStatus.IN_PROGRESS, 0
    )
    cycle.save(update_fields=["healed", "failed", "skipped", "escalated", "pending"])
    return cycle


def cycles_refresh_pending(*, now: datetime | None = None) -> int:
    """Recount recent cycles that still had healings in flight when they ended.

    A cycle's row is written when it finishes dispatching, before its workers
    finish; the per-minute job brings the counters up to date.
    """
    since = (now or timezone.now()) - timedelta(days=1)
    cycles = list(HealingCycle.objects.filter(started_at__gte=since, pending__gt=0))
    for cycle in cycles:
        cycle_refresh_counts(cycle=cycle)
    return len(cycles)


def _default_dispatch(pairs: list[tuple[int, str]]) -> None:
    from healing.tasks import dispatch_healings  # tasks import services

    dispatch_healings(pairs)


def healing_cycle_run(
    *, trigger: str = Trigger.BEAT, now: datetime | None = None, dispatch: Dispatch | None = None
) -> CycleResult:
    """Detect every stuck order, record its healing, dispatch one task per healing.

    Only one cycle runs at a time: the RUNNING cycle row is the lock (a
    partial unique constraint); a second caller returns ``ran=False``.
    """
    started = time.monotonic()
    now = now or timezone.now()
    dispatch = dispatch or _default_dispatch
    cycle = _cycle_acquire(trigger=trigger, now=now)
    if cycle is None:
        logger.info("Self-healing worker: cycle skipped, another cycle is running")
        return CycleResult(ran=False, reason="another cycle is running")
    logger.info("Self-healing worker: Starting cycle", extra={"cycle_id": cycle.pk})
    try:
        result = _cycle_body(cycle=cycle, now=now, dispatch=dispatch)
    except Exception as exc:
        HealingCycle.objects.filter(pk=cycle.pk).update(
            status=CycleStatus.FAILED, finished_at=timezone.now(), error=repr(exc)[:2000]
        )
        logger.exception("Self-healing worker: cycle failed", extra={"cycle_id": cycle.pk})
        raise
    cycle_refresh_counts(cycle=cycle)
    cycle.status = CycleStatus.FINISHED
    cycle.finished_at = timezone.now()
    cycle.duration_ms = round((time.monotonic() - started) * 1000, 3)
    cycle.save(update_fields=["status", "finished_at", "duration_ms"])
    result.healed, result.failed = cycle.healed, cycle.failed
    result.skipped, result.escalated, result.pending = cycle.skipped, cycle.escalated, cycle.pending
    result.duration_ms = cycle.duration_ms
    logger.info(
        "Self-healing worker: Cycle completed",
        extra={
            "cycle_id": cycle.pk,
            **{k: v for k, v in result.as_dict().items() if k != "by_action"},
        },
    )
    metrics_rollup_after_cycle(cycle_id=cycle.pk)
    return result


def _cycle_body(*, cycle: HealingCycle, now: datetime, dispatch: Dispatch) -> CycleResult:
    stuck = stuck_orders_detect(now=now)
    open_count = open_orders_count()
    tripped = guard_trips(stuck=len(stuck), open_orders=open_count)
    lease = _lease_deadline(now)
    rows: list[HealingAction] = []
    # Every active healing past its lease is re-dispatched, stuck order or not.
    expired: set[int] = set(expired_active_healings(now=now))
    by_action: dict[str, int] = {}
    dry_run = 0
    for item in stuck:
        if item.expired_healing_id is not None:
            expired.add(item.expired_healing_id)
            continue
        status, skip_reason = RecoveryStatus.PENDING, ""
        if item.dry_run:
            status, skip_reason = RecoveryStatus.SKIPPED, SkipReason.DRY_RUN
            dry_run += 1
        elif tripped and item.recommended_action in GUARDED_ACTIONS:
            status, skip_reason = RecoveryStatus.SKIPPED, SkipReason.GUARD
        by_action[item.recommended_action] = by_action.get(item.recommended_action, 0) + 1
        rows.append(
            HealingAction(
                order_id=item.order_id,
                cycle=cycle,
                issue_type=item.issue_type,
                trigger=cycle.trigger,
                issue_detected_at=now,
                detected_status=item.status,
                episode_started_at=item.stuck_since,
                stuck_minutes=item.stuck_minutes,
                attempt_number=item.attempts + 1,
                dry_run=item.dry_run,
                recovery_action=item.recommended_action,
                recovery_status=status,
                skip_reason=skip_reason,
                completed_at=now if status == RecoveryStatus.SKIPPED else None,
                recovery_duration_seconds=0.0 if status == RecoveryStatus.SKIPPED else None,
                previous_vendor_id=item.vendor_id,
                claim_token=uuid.uuid4() if status == RecoveryStatus.PENDING else None,
                lease_expires_at=lease if status == RecoveryStatus.PENDING else None,
                created_at=now,
                updated_at=now,
            )
        )
    with transaction.atomic():
        # Conflict-safe: an order that got an active healing since detection
        # (an operator's manual heal) keeps that one.
        HealingAction.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
        to_send = [
            (healing_id, str(token))
            for healing_id, token in HealingAction.objects.filter(
                cycle=cycle, recovery_status=RecoveryStatus.PENDING
            ).values_list("id", "claim_token")
        ]
        redispatched = 0
        for healing_id in sorted(expired):
            token = uuid.uuid4()
            if HealingAction.objects.filter(
                pk=healing_id, recovery_status__in=ACTIVE_STATUSES, lease_expires_at__lt=now
            ).update(
                recovery_status=RecoveryStatus.PENDING,
                claim_token=token,
                lease_expires_at=lease,
                updated_at=now,
            ):
                to_send.append((healing_id, str(token)))
                redispatched += 1
        if tripped:
            notification_raise(
                notification_type=NotificationType.SYSTEM_ALERT,
                severity=Severity.CRITICAL,
                title=f"Blast-radius guard tripped: {len(stuck)} stuck orders",
                message=(
                    f"{len(stuck)} of {open_count} open orders are stuck "
                    f"({len(stuck) / open_count:.0%}). Automatic reassignment, cancellation "
                    "and escalation are paused; workflow retries continue. Check the vendor "
                    "gateway and vendor systems before resolving."
                ),
                details={
                    "alert": "guard",
                    "cycle_id": cycle.pk,
                    "stuck_orders": len(stuck),
                    "open_orders": open_count,
                    "min_stuck": settings.HEALING_GUARD_MIN_STUCK,
                    "max_share": settings.HEALING_GUARD_MAX_SHARE,
                    "by_action": by_action,
                },
                dedup_key="guard",
                now=now,
            )
        else:
            notification_resolve_condition(dedup_key="guard", now=now)
        HealingCycle.objects.filter(pk=cycle.pk).update(
            detected=len(stuck),
            dispatched=len(to_send),
            redispatched=redispatched,
            open_orders=open_count,
            guard_tripped=tripped,
        )
        cycle.detected, cycle.guard_tripped = len(stuck), tripped
        # Invariant 6: tasks leave only after their rows are committed.
        transaction.on_commit(lambda: dispatch(to_send))
    return CycleResult(
        ran=True,
        cycle_id=cycle.pk,
        detected=len(stuck),
        dispatched=len(to_send),
        redispatched=redispatched,
        guard_tripped=tripped,
        dry_run=dry_run,
        by_action=by_action,
    )


# --- Operator requests (API) ---------------------------------------------------


class CycleAlreadyRunning(DomainError):
    code = "cycle_running"
    http_status = 409


@dataclass(frozen=True)
class HealReport:
    healing: HealingAction
    retry_scheduled: bool


@dataclass(frozen=True)
class CycleReport:
    cycle: HealingCycle
    result: CycleResult
    waited_seconds: float

    @property
    def timed_out(self) -> bool:
        return self.cycle.pending > 0


def healing_request(
    *,
    order: Order,
    requested_by: Any,
    issue_type: str | None = None,
    recovery_action: str | None = None,
) -> HealReport:
    """Heal one order now, on an operator's request.

    The healing runs inline so the caller sees its outcome. A transient
    failure (vendor gateway down) is not an error of the request: the healing
    goes to the worker, which retries it with backoff, and the caller gets it
    as it stands. An order that already has an active healing gets that one.
    """
    from healing.tasks import backoff_seconds, heal_order  # tasks import services

    healing = healing_initiate(
        order=order,
        trigger=Trigger.API,
        issue_type=issue_type,
        recovery_action=recovery_action,
        requested_by=requested_by,
    )
    retry_scheduled = False
    if healing.recovery_status == RecoveryStatus.PENDING:
        try:
            healing_execute(healing_id=healing.pk, token=healing.claim_token)
        except HealingTransientError as exc:
            logger.info(
                "manual healing hit a transient error; handed to the worker",
                extra={"healing_id": healing.pk, "error": str(exc)},
            )
            # The inline attempt was the first: the task continues at retry 1.
            heal_order.apply_async(
                args=(healing.pk, str(exc.token)), countdown=backoff_seconds(0), retries=1
            )
            retry_scheduled = True
    healing = HealingAction.objects.select_related("requested_by").get(pk=healing.pk)
    return HealReport(healing=healing, retry_scheduled=retry_scheduled)


def cycle_run_and_wait(
    *, trigger: str = Trigger.API, wait_seconds: float | None = None
) -> CycleReport:
    """Run one cycle, then poll its healings until none is pending or time is up.

    In-process (no broker) the healings are finished when the cycle returns;
    with workers they finish on their own clock, so the wait is bounded and
    the answer says how many are still pending.
    """
    wait = settings.HEALING_API_WAIT_SECONDS if wait_seconds is None else wait_seconds
    started = time.monotonic()
    result = healing_cycle_run(trigger=trigger)
    if not result.ran:
        running = HealingCycle.objects.filter(status=CycleStatus.RUNNING).first()
        reason = (
            f"cycle {running.pk} ({running.trigger}) has been running since "
            f"{running.started_at.isoformat()}"
            if running
            else result.reason or "another cycle is running"
        )
        raise CycleAlreadyRunning(f"another cycle is running: {reason}")
    cycle = HealingCycle.objects.get(pk=result.cycle_id)
    deadline = started + wait
    while cycle.pending and time.monotonic() < deadline:
        time.sleep(min(settings.HEALING_API_POLL_SECONDS, max(deadline - time.monotonic(), 0)))
        cycle_refresh_counts(cycle=cycle)
    return CycleReport(cycle=cycle, result=result, waited_seconds=time.monotonic() - started)
