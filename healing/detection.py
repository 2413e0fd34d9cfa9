"""The one definition of "stuck" (docs/DECISIONS.md "Healing flow", "Attempts").

An order is stuck when it has sat in a status longer than its rule's
threshold, has no live active healing and is not on manual hold. Everything
that asks "is this order stuck?" — the cycle, the operator's heal request, the
API and dashboard lists, the statistics, the seed's SQL view (tested against
this module) and the benchmark — asks here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import (
    BigIntegerField,
    Count,
    DateTimeField,
    FilteredRelation,
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
    """The UTC datetime of integer microseconds since the epoch, exact.

    ``fromtimestamp`` of the float seconds is half the cost of adding a
    ``timedelta`` to the epoch, and exact: the float is within half a unit in
    the last place of ``value / 10**6`` (0.24 us at most before 2106), and
    CPython rounds its fraction half-even to the microsecond.
    """
    return datetime.fromtimestamp(value / 1_000_000, UTC)


_MICROSECOND = timedelta(microseconds=1)
_MINUTE_US = 60_000_000


def epoch_micros(value: datetime) -> int:
    return (value - _EPOCH) // _MICROSECOND


# One row per (candidate order, non-SKIPPED healing of it); an order without
# such a healing has one row whose healing columns are NULL.
_COLUMNS = (
    "rule_position",
    "id",
    "number",
    "clock_us",
    "vendor_id",
    "healing__id",
    "healing__recovery_status",
    "healing_created_us",
    "healing_resolved_us",
    "healing_lease_us",
)
_Row = tuple[
    int, int, str, int, int | None, int | None, str | None, int | None, int | None, int | None
]


def _healings() -> FilteredRelation:
    # A new one per query: a FilteredRelation is bound to the query using it.
    return FilteredRelation(
        "healing_actions", condition=~Q(healing_actions__recovery_status=RecoveryStatus.SKIPPED)
    )


def _candidates(*, rules: list[StuckRule], now: datetime) -> QuerySet[Order, _Row]:
    """Every order past its rule's threshold, with its healings, as one query.

    A UNION ALL of each rule's two index range scans (``_past_due``; an order
    is in one part of one rule only), each LEFT JOINed by order id to the
    order's healings but SKIPPED ones (neither attempts nor active; a long
    guard trip can leave many of them). Rows
    come in the rules' order, then oldest clock first, then by id, so an
    order's rows are adjacent. Every clock is read as integer microseconds
    and nothing is converted in Python per row.
    """

    def part(position: int, condition: Q) -> QuerySet[Order, _Row]:
        return (
            Order.objects.filter(condition)
            .order_by()
            .alias(healing=_healings())
            .annotate(
                rule_position=Value(position, output_field=IntegerField()),
                clock_us=EpochMicros("stuck_since"),
                healing_created_us=EpochMicros("healing__created_at"),
                healing_resolved_us=EpochMicros("healing__resolved_at"),
                healing_lease_us=EpochMicros("healing__lease_expires_at"),
            )
            .values_list(*_COLUMNS)
        )

    parts = [
        part(position, condition)
        for position, rule in enumerate(rules)
        for condition in _past_due(rule=rule, now=now)
    ]
    in_order = ("rule_position", "clock_us", "id")  # the annotations, as a combined query orders
    return parts[0].union(*parts[1:], all=True).order_by(*in_order)


class _Rule:
    """What a stuck order of one rule takes from it, looked up once."""

    __slots__ = ("actions", "dry_run", "issue_type", "rule", "status")

    def __init__(self, rule: StuckRule) -> None:
        self.rule, self.status, self.issue_type = rule, rule.status, rule.issue_type
        self.dry_run = rule.dry_run
        self.actions: dict[int, str] = {}  # attempts -> the ladder's step

    def action(self, attempts: int) -> str:
        action = self.actions.get(attempts)
        if action is None:
            action = self.actions[attempts] = self.rule.action_for_attempt(attempts)
        return action


# A healing's id, status, created, resolved and lease (microseconds).
_Healing = tuple[int, str, int | None, int | None, int | None]


def _healing_state(healings: list[_Healing], *, now_us: int) -> tuple[int | None, bool, int] | None:
    """(active healing id, its lease is live, attempts since the last manual
    resolution) from an order's healings; None when it is on manual hold."""
    active_id: int | None = None
    active_live = False
    last_resolution: int | None = None
    attempt_times: list[int] = []
    for healing_id, status, created, resolved, lease in healings:
        if status in ACTIVE_STATUSES:
            active_id = healing_id
            active_live = lease is None or lease >= now_us
        if status == RecoveryStatus.MANUAL_REQUIRED and resolved is None:
            return None
        if resolved is not None and (last_resolution is None or resolved > last_resolution):
            last_resolution = resolved
        if status in ATTEMPT_STATUSES and created is not None:
            attempt_times.append(created)
    since = last_resolution or 0  # before any resolution: from the epoch
    return active_id, active_live, sum(1 for created in attempt_times if created > since)


def _stuck_orders(
    rows: Iterator[_Row], *, rules: list[_Rule], now: datetime
) -> Iterator[StuckOrder]:
    """The stuck orders among ``_candidates`` rows (an order's rows are
    adjacent): all but those a live active healing or a manual hold covers."""
    now_us = epoch_micros(now)

    def built(order: _Row, healings: list[_Healing]) -> StuckOrder | None:
        rule = rules[order[0]]
        active_id: int | None = None
        attempts = 0
        if healings:
            state = _healing_state(healings, now_us=now_us)
            if state is None or state[1]:
                return None
            active_id, _, attempts = state
        clock_us = order[3]
        return StuckOrder(  # positional, in field order: a third of the cost of keywords
            order[1],
            order[2],
            rule.status,
            rule.issue_type,
            from_epoch_micros(clock_us),
            (now_us - clock_us) // _MINUTE_US,
            attempts,
            rule.action(attempts),
            1 if active_id else 0,
            active_id,
            order[4],
            rule.dry_run,
        )

    order: _Row | None = None
    healings: list[_Healing] = []
    for row in rows:
        if order is None or row[1] != order[1]:
            if order is not None and (item := built(order, healings)) is not None:
                yield item
            order, healings = row, []
        if row[5] is not None:
            healings.append(row[5:])  # type: ignore[arg-type]
    if order is not None and (item := built(order, healings)) is not None:
        yield item


def _fetched(cursor: Any, size: int = 2000) -> Iterator[_Row]:
    """The cursor's rows, ``size`` at a time (iterating a psycopg cursor row
    by row costs about a microsecond a row more).

    psycopg's client-side cursor holds the whole result once executed; other
    databases (SQLite) step the statement as rows are fetched, and the cycle
    inserts healings, the joined table, between batches: read them all first.
    """
    if connection.vendor != "postgresql":
        yield from cursor.fetchall()
        return
    while rows := cursor.fetchmany(size):
        yield from rows


# The plan detection wants whatever the estimates (PostgreSQL settings, local
# to the statement's transaction): each candidate order's healings probed by
# index, no parallel workers.
_PLAN_SETTINGS = {
    "enable_hashjoin": "off",
    "enable_mergejoin": "off",
    "max_parallel_workers_per_gather": "0",
}


@contextmanager
def _index_driven_plan() -> Iterator[None]:
    """The statement executed inside probes healings by order id, serially.

    The planner overestimates each rule's range about tenfold (the clock's
    histogram is the whole table's, finished orders included). With that
    estimate it joins the healings by hashing a sequential scan of all of
    them (870k rows of history: 1.9 s instead of milliseconds, growing with
    history) and prefers a parallel plan, whose workers take 20 ms and more
    to start for a query that runs in a few. The settings are local to a
    savepoint's transaction and put back afterwards, so a caller's
    transaction (the cycle) keeps its own.
    """
    if connection.vendor != "postgresql":
        yield
        return
    names = list(_PLAN_SETTINGS)
    current = ", ".join(["current_setting(%s)"] * len(names))
    change = ", ".join(["set_config(%s, %s, true)"] * len(names))
    nested = connection.in_atomic_block  # else the transaction ends with the block
    with transaction.atomic(), connection.cursor() as cursor:
        pairs = [value for item in _PLAN_SETTINGS.items() for value in item]
        cursor.execute(f"SELECT {current}, {change}", [*names, *pairs])
        previous = cursor.fetchone()[: len(names)]
        yield
        if nested:
            restore = [value for pair in zip(names, previous, strict=True) for value in pair]
            cursor.execute(f"SELECT {change}", restore)


def stuck_orders_batches(
    *, now: datetime | None = None, rules: list[StuckRule] | None = None, size: int = 5000
) -> Iterator[list[StuckOrder]]:
    """Every stuck order, at most ``size`` at a time: past its rule's
    threshold, not being healed (an active healing whose lease expired is
    reported for re-dispatch), not on manual hold.

    One indexed query for every rule (``_candidates``: each rule's range
    scans joined to their orders' healings), so the cost grows with the
    number of stuck orders, not with the size of the orders table or the
    depth of healing history. Rows are read as plain tuples from the cursor;
    the stuck orders built from them leave in batches, so a caller that
    writes as it goes (the cycle) never holds a backlog's worth of objects.
    """
    now = now or timezone.now()
    rules = rules_enabled() if rules is None else rules
    if not rules:
        return
    sql, params = _candidates(rules=rules, now=now).query.sql_with_params()
    with connection.cursor() as cursor:
        with _index_driven_plan():
            cursor.execute(sql, params)
        batch: list[StuckOrder] = []
        for item in _stuck_orders(_fetched(cursor), rules=[_Rule(rule) for rule in rules], now=now):
            batch.append(item)
            if len(batch) >= size:
                yield batch
                batch = []
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
