"""Reads of the healing engine: detection above all."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import (
    Count,
    DateTimeField,
    Exists,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from healing.models import (
    ACTIVE_STATUSES,
    ATTEMPT_STATUSES,
    HealingAction,
    RecoveryStatus,
    StuckRule,
)
from orders.models import OPEN_STATUSES, Order

# Before any resolution: attempts are counted from the beginning of time.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class StuckOrder:
    """One row of the seed's ``stuck_orders_view``."""

    order_id: int
    order_number: str
    status: str
    issue_type: str
    stuck_since: datetime
    stuck_minutes: int
    attempts: int
    recommended_action: str
    active_healing_count: int
    # An active healing whose lease expired: re-dispatched, not re-created.
    expired_healing_id: int | None
    vendor_id: int | None
    dry_run: bool


def rules_enabled() -> list[StuckRule]:
    return list(StuckRule.objects.filter(enabled=True).order_by("threshold_minutes"))


def rule_for_status(status: str) -> StuckRule | None:
    return StuckRule.objects.filter(status=status).first()


def attempts_subquery(order_ref: OuterRef | int) -> Subquery:
    """Earlier SUCCESS / FAILED / MANUAL_REQUIRED healings since the last manual resolution."""
    # Nested one level deeper: "the same order as the healing being counted".
    last_resolution = (
        HealingAction.objects.filter(order_id=OuterRef("order_id"), resolved_at__isnull=False)
        .order_by("-resolved_at")
        .values("resolved_at")[:1]
    )
    counted = (
        HealingAction.objects.filter(
            order_id=order_ref,
            recovery_status__in=ATTEMPT_STATUSES,
            created_at__gt=Coalesce(
                Subquery(last_resolution, output_field=DateTimeField()),
                Value(_EPOCH, output_field=DateTimeField()),
            ),
        )
        .order_by()
        .values("order_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def _stuck_queryset(*, rule: StuckRule, now: datetime) -> QuerySet[Order]:
    cutoff = now - timedelta(minutes=rule.threshold_minutes)
    active = HealingAction.objects.filter(
        order_id=OuterRef("pk"), recovery_status__in=ACTIVE_STATUSES
    )
    live_active = active.filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__gte=now))
    on_manual_hold = HealingAction.objects.filter(
        order_id=OuterRef("pk"),
        recovery_status=RecoveryStatus.MANUAL_REQUIRED,
        resolved_at__isnull=True,
    )
    return (
        # status = S AND stuck_since < cutoff: a range scan of the partial
        # index orders_open_stuck_idx; finished orders are never read.
        Order.objects.filter(status=rule.status, stuck_since__lt=cutoff)
        .exclude(Exists(live_active))
        .exclude(Exists(on_manual_hold))
        .annotate(
            attempts=attempts_subquery(OuterRef("pk")),
            expired_healing_id=Subquery(active.values("id")[:1]),
        )
        .order_by("stuck_since", "id")
        .values_list("id", "number", "stuck_since", "attempts", "expired_healing_id", "vendor_id")
    )


def stuck_orders_detect(
    *, now: datetime | None = None, rules: list[StuckRule] | None = None, limit: int | None = None
) -> list[StuckOrder]:
    """Every stuck order: past its rule's threshold, not being healed, not on manual hold.

    One indexed query per rule; its cost grows with the number of stuck
    orders, not with the size of the orders table.
    """
    now = now or timezone.now()
    rules = rules_enabled() if rules is None else rules
    found: list[StuckOrder] = []
    for rule in rules:
        rows = _stuck_queryset(rule=rule, now=now)
        if limit is not None:
            rows = rows[: max(limit - len(found), 0)]
        for order_id, number, stuck_since, attempts, expired_id, vendor_id in rows:
            found.append(
                StuckOrder(
                    order_id=order_id,
                    order_number=number,
                    status=rule.status,
                    issue_type=rule.issue_type,
                    stuck_since=stuck_since,
                    stuck_minutes=int((now - stuck_since).total_seconds() // 60),
                    attempts=attempts,
                    recommended_action=rule.action_for_attempt(attempts),
                    active_healing_count=1 if expired_id else 0,
                    expired_healing_id=expired_id,
                    vendor_id=vendor_id,
                    dry_run=rule.dry_run,
                )
            )
        if limit is not None and len(found) >= limit:
            break
    return found


def open_orders_count() -> int:
    return Order.objects.filter(status__in=OPEN_STATUSES).count()


def order_attempts(*, order_id: int) -> int:
    return (
        Order.objects.filter(pk=order_id)
        .annotate(attempts=attempts_subquery(OuterRef("pk")))
        .values_list("attempts", flat=True)
        .first()
        or 0
    )


def order_on_manual_hold(*, order_id: int) -> bool:
    return HealingAction.objects.filter(
        order_id=order_id, recovery_status=RecoveryStatus.MANUAL_REQUIRED, resolved_at__isnull=True
    ).exists()


def active_healing_for_order(*, order_id: int) -> HealingAction | None:
    return HealingAction.objects.filter(
        order_id=order_id, recovery_status__in=ACTIVE_STATUSES
    ).first()


def healing_history(*, order_id: int, limit: int = 20) -> list[dict]:
    """An order's earlier healings, newest first, for notification context."""
    return list(
        HealingAction.objects.filter(order_id=order_id)
        .order_by("-issue_detected_at", "-id")
        .values(
            "id",
            "issue_type",
            "recovery_action",
            "recovery_status",
            "skip_reason",
            "issue_detected_at",
            "completed_at",
            "error_message",
            "retry_count",
        )[:limit]
    )
