"""The one definition of "stuck" (DESIGN.md "Healing flow", "Attempts").

An order is stuck when it has sat in a status longer than its rule's
threshold, has no live active healing and is not on manual hold. Everything
that asks "is this order stuck?" — the cycle, the operator's heal request, the
API and dashboard lists, the statistics, the seed's SQL view (tested against
this module) and the benchmark — asks here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import (
    BigIntegerField,
    Count,
    DateTimeField,
    Func,
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


@dataclass(slots=True)
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


def attempts_subquery(order_ref: OuterRef | int) -> Coalesce:
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


def _past_due(*, rule: StuckRule, now: datetime, prefix: str = "") -> tuple[Q, Q]:
    """The two ways an order in the rule's status is past its threshold.

    "Vendor time" (issue 18): an order of a vendor with a calendar carries its
    due time (``due_at``, working minutes); the others have none and are
    judged by the wall clock as before. Each condition is a range scan of its
    own partial index — orders_open_stuck_idx (status, stuck_since) and
    orders_open_due_idx (status, due_at) — queried apart, because an OR of the
    two would scan every order in the status.
    """
    cutoff = now - timedelta(minutes=rule.threshold_minutes)
    status = Q(**{f"{prefix}status": rule.status})
    wall_clock = status & Q(**{f"{prefix}stuck_since__lt": cutoff, f"{prefix}due_at__isnull": True})
    vendor_time = status & Q(**{f"{prefix}due_at__lt": now})
    return wall_clock, vendor_time


def orders_past_threshold(*, rule: StuckRule, now: datetime) -> QuerySet[Order]:
    """Orders past ``rule``'s threshold as one filter (counts and aggregates:
    healing.reports.statistics); detection reads the two parts apart."""
    wall_clock, vendor_time = _past_due(rule=rule, now=now)
    return Order.objects.filter(wall_clock | vendor_time).order_by("stuck_since", "id")


class EpochMicros(Func):
    """A timestamp as integer microseconds since the epoch (exact).

    Detection reads one clock per stuck order; Django's timestamptz loader
    parses each in Python (about 5 us a row, most of detection's CPU at 10k
    rows), an integer loads in C. PostgreSQL 14+ (Django 5.2's minimum)
    returns EXTRACT as exact numeric; SQLite stores Django's
    ``YYYY-MM-DD HH:MM:SS[.ffffff]`` UTC text.
    """

    output_field = BigIntegerField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        template = "(EXTRACT(EPOCH FROM %(expressions)s) * 1000000)::bigint"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        template = (
            "(CAST(strftime('%%%%s', substr(%(expressions)s, 1, 19)) AS INTEGER) * 1000000"
            " + CAST(substr(%(expressions)s || '.000000', 21, 6) AS INTEGER))"
        )
        return self.as_sql(compiler, connection, template=template, **extra)


def from_epoch_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _stuck_rows(
    *, rule: StuckRule, now: datetime
) -> QuerySet[Order, tuple[int, str, int, int | None]]:
    """Orders past ``rule``'s threshold, oldest clock first, as (id, number,
    clock in epoch microseconds, vendor): a UNION ALL of the two index range
    scans of ``_past_due`` (an order is in one part only)."""
    wall_clock, vendor_time = _past_due(rule=rule, now=now)
    columns = ("id", "number", "clock_us", "vendor_id")

    def part(condition: Q) -> QuerySet[Order, tuple[int, str, int, int | None]]:
        return (
            Order.objects.filter(condition)
            .order_by()
            .annotate(clock_us=EpochMicros("stuck_since"))
            .values_list(*columns)
        )

    oldest_first = ("clock_us", "id")  # the annotation, as a combined query orders
    return part(wall_clock).union(part(vendor_time), all=True).order_by(*oldest_first)


@dataclass
class _HealingState:
    active_id: int | None = None
    active_live: bool = False
    on_hold: bool = False
    last_resolution: datetime | None = None
    attempt_times: list[datetime] = field(default_factory=list)

    def attempts(self) -> int:
        if not self.attempt_times:
            return 0
        since = self.last_resolution or _EPOCH
        return sum(1 for created in self.attempt_times if created > since)


def _healing_states(*, rule: StuckRule, now: datetime) -> dict[int, _HealingState]:
    """What the healings of the rule's candidate orders say about them.

    Joined on the same range of the same partial index as the candidates
    (no list of ids to send back), then by order id into healing_actions.
    SKIPPED healings are never read: they are neither attempts nor active, and
    a long guard trip can leave many of them.
    """
    rows = [
        row
        for part in _past_due(rule=rule, now=now, prefix="order__")
        for row in HealingAction.objects.filter(part)
        .exclude(recovery_status=RecoveryStatus.SKIPPED)
        .order_by()
        .values_list(
            "id", "order_id", "recovery_status", "created_at", "resolved_at", "lease_expires_at"
        )
    ]
    states: dict[int, _HealingState] = {}
    for healing_id, order_id, status, created, resolved, lease in rows:
        state = states.setdefault(order_id, _HealingState())
        if status in ACTIVE_STATUSES:
            state.active_id = healing_id
            state.active_live = lease is None or lease >= now
        if status == RecoveryStatus.MANUAL_REQUIRED and resolved is None:
            state.on_hold = True
        if resolved is not None and (
            state.last_resolution is None or resolved > state.last_resolution
        ):
            state.last_resolution = resolved
        if status in ATTEMPT_STATUSES:
            state.attempt_times.append(created)
    return states


def _stuck_items(
    *,
    rule: StuckRule,
    now: datetime,
    states: dict[int, _HealingState],
    rows: list[tuple[int, str, int, int | None]],
) -> list[StuckOrder]:
    empty = _HealingState()
    actions: dict[int, str] = {}  # attempts -> the ladder's step (one call per distinct count)
    found: list[StuckOrder] = []
    for order_id, number, clock_us, vendor_id in rows:
        state = states.get(order_id, empty)
        if state.on_hold or state.active_live:
            continue
        attempts = state.attempts()
        action = actions.get(attempts)
        if action is None:
            action = actions[attempts] = rule.action_for_attempt(attempts)
        stuck_since = from_epoch_micros(clock_us)
        found.append(
            StuckOrder(
                order_id=order_id,
                order_number=number,
                status=rule.status,
                issue_type=rule.issue_type,
                stuck_since=stuck_since,
                stuck_minutes=int((now - stuck_since).total_seconds() // 60),
                attempts=attempts,
                recommended_action=action,
                active_healing_count=1 if state.active_id else 0,
                expired_healing_id=state.active_id,
                vendor_id=vendor_id,
                dry_run=rule.dry_run,
            )
        )
    return found


def stuck_orders_batches(
    *, now: datetime | None = None, rules: list[StuckRule] | None = None, size: int = 5000
) -> Iterator[list[StuckOrder]]:
    """Every stuck order, at most ``size`` at a time: past its rule's
    threshold, not being healed (an active healing whose lease expired is
    reported for re-dispatch), not on manual hold.

    Two indexed queries per rule — the orders' range scan, then their healings
    joined on the same range — so the cost grows with the number of stuck
    orders, not with the size of the orders table or the depth of healing
    history. A rule's candidates are read as plain tuples; the stuck orders
    built from them leave in batches, so a caller that writes as it goes (the
    cycle) never holds a backlog's worth of objects.
    """
    now = now or timezone.now()
    rules = rules_enabled() if rules is None else rules
    for rule in rules:
        candidates = list(_stuck_rows(rule=rule, now=now))
        if not candidates:
            continue
        states = _healing_states(rule=rule, now=now)
        for start in range(0, len(candidates), size):
            batch = _stuck_items(
                rule=rule, now=now, states=states, rows=candidates[start : start + size]
            )
            if batch:
                yield batch


def stuck_orders_detect(
    *, now: datetime | None = None, rules: list[StuckRule] | None = None, limit: int | None = None
) -> list[StuckOrder]:
    """Every stuck order as one list (:func:`stuck_orders_batches`); the
    first ``limit`` of them when given."""
    found: list[StuckOrder] = []
    for batch in stuck_orders_batches(now=now, rules=rules):
        found.extend(batch)
        if limit is not None and len(found) >= limit:
            return found[:limit]
    return found


def expired_active_healings(*, now: datetime) -> list[int]:
    """Active healings whose lease ran out: their task was lost (invariant 7).

    Read from the partial index on active leases, whatever the order's state,
    so a lost manual or ``auto_heal_order()`` healing is picked up too.
    """
    return list(
        HealingAction.objects.filter(recovery_status__in=ACTIVE_STATUSES, lease_expires_at__lt=now)
        .order_by()
        .values_list("id", flat=True)
    )


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
