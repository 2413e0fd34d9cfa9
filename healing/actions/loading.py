"""Load a healing with everything its action needs, in one statement.

The healing row, its order, the order's vendor and, for a reassignment, the
best candidate vendor (``orders.selectors.vendor_candidates``' ranking) come
back in one round trip, with the circuit state (``orders.health``) of the
vendor the action would message: a vendor whose circuit is open is never a
candidate, and a healthy vendor costs the heal path no extra statement.
The statement is plain SQL with named columns, built once per process from
the models' fields; rows become model instances through the documented
``Model.from_db`` hook. Building and compiling the equivalent queryset for
every heal was over half of a heal's CPU in a worker.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection, models
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from healing.models import ACTIVE_STATUSES, HealingAction, RecoveryAction, RecoveryStatus
from orders import sql as orders_sql
from orders.health import CircuitView
from orders.models import (
    CircuitState,
    MessageKind,
    Order,
    Vendor,
    VendorAssignment,
    VendorCircuit,
    VendorMessage,
)


@dataclass(frozen=True)
class Candidate:
    """The vendor the action would message: for a reassignment the best other
    vendor, for a workflow retry the order's own vendor."""

    vendor_id: int
    webhook_url: str
    circuit: CircuitView | None = None
    vendor: Vendor | None = None

    @property
    def circuit_view(self) -> CircuitView:
        return self.circuit or CircuitView(vendor_id=self.vendor_id)


@dataclass(frozen=True)
class Loaded:
    """The loaded rows; ``claimed_token`` is set when the load also took the
    claim (PostgreSQL: one statement, see :func:`healing_load`)."""

    healing: HealingAction
    candidate: Candidate | None
    claimed_token: uuid.UUID | None = None
    claim_tried: bool = False


Converter = Callable[[Any], Any]


def _sqlite_converter(field: models.Field[Any, Any]) -> Converter | None:
    """SQLite hands back text for these types; PostgreSQL (psycopg) typed values."""
    if isinstance(field, models.DateTimeField):
        return lambda value: (
            value
            if value is None or (isinstance(value, datetime) and value.tzinfo)
            else _aware(value)
        )
    if isinstance(field, models.UUIDField):
        return lambda value: (
            value if value is None or isinstance(value, uuid.UUID) else uuid.UUID(value)
        )
    if isinstance(field, models.DecimalField):
        return lambda value: value if value is None else Decimal(str(value))
    if isinstance(field, models.BooleanField):
        return lambda value: value if value is None else bool(value)
    return None


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _converter(field: models.Field[Any, Any], sqlite: bool) -> Converter | None:
    # Django reads json columns as text on every backend and decodes them in
    # the field (vendor calendars, issue 18): the raw row must do the same.
    if isinstance(field, models.JSONField):
        return _json
    return _sqlite_converter(field) if sqlite else None


def _aware(value: Any) -> datetime:
    parsed = value if isinstance(value, datetime) else parse_datetime(str(value))
    if parsed is None:
        raise ValueError(f"not a datetime: {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class _Part:
    model: type[models.Model]
    attnames: list[str]
    converters: list[Converter | None]
    start: int
    end: int

    def instance(self, row: Sequence[Any]) -> Any:
        values = list(row[self.start : self.end])
        for index, convert in enumerate(self.converters):
            if convert is not None:
                values[index] = convert(values[index])
        return self.model.from_db(connection.alias, self.attnames, values)


@dataclass(frozen=True)
class _Statement:
    sql: str
    claiming_sql: str | None
    healing: _Part
    order: _Part
    vendor: _Part
    candidate: _Part


def _part(
    model: type[models.Model], alias: str, start: int, sqlite: bool
) -> tuple[_Part, list[str]]:
    fields = list(model._meta.concrete_fields)
    quote = connection.ops.quote_name
    columns = [f"{alias}.{quote(str(field.column))}" for field in fields]
    part = _Part(
        model=model,
        attnames=[field.attname for field in fields],
        converters=[_converter(field, sqlite) for field in fields],
        start=start,
        end=start + len(fields),
    )
    return part, columns


def _candidate_sql(*, limited: bool, spread: int, headroom: int = 0) -> str:
    """``orders.selectors.vendor_candidates`` + ``vendor_select``, as SQL.

    Active, free capacity, never had the order, circuit not open and (when
    ``limited``) fewer offers in the last minute than the limit (issue 18);
    vendors with more than ``headroom`` free slots before the nearly full
    ones, then best acceptance rate, then most free room, then id; the healing picks
    the ``h.id mod n``-th of the first ``spread`` (issue 16), so concurrent
    reassignments do not all queue on the best vendor's row.
    tests/healing/actions/test_loading.py keeps the two in agreement.
    Names only from the models (quoted); every value is a parameter.
    """
    quote = connection.ops.quote_name
    vendors = quote(Vendor._meta.db_table)
    assignments = quote(VendorAssignment._meta.db_table)
    circuits = quote(VendorCircuit._meta.db_table)
    messages = quote(VendorMessage._meta.db_table)
    where = (
        "c2.is_active AND c2.open_orders < c2.capacity "  # noqa: S608
        f"AND NOT EXISTS (SELECT 1 FROM {assignments} a "
        "WHERE a.order_id = h.order_id AND a.vendor_id = c2.id) "
        f"AND NOT EXISTS (SELECT 1 FROM {circuits} x WHERE x.vendor_id = c2.id "
        "AND x.state <> %s AND (x.retry_at IS NULL OR x.retry_at > %s))"
    )
    if limited:
        # Counting stops at the limit: at most that many index entries a vendor.
        where += (
            f" AND (SELECT COUNT(*) FROM (SELECT 1 FROM {messages} m "  # noqa: S608
            "WHERE m.vendor_id = c2.id AND m.kind = %s AND m.created_at > %s LIMIT %s) q) < %s"
        )
    # Issue 16: a full vendor that got one slot back (an order reassigned
    # away) ranks first again; every heal in flight then races for that one
    # slot and all but one retry (9 % of heals at a 25,000-order backlog,
    # bench.reassign_backlog). Ranking the nearly full last leaves their last
    # ``headroom`` slots for when no roomier vendor is left. False sorts first.
    nearly_full = f"({{0}}capacity - {{0}}open_orders <= {int(headroom)}), " if headroom > 0 else ""
    ranking = nearly_full + "{0}acceptance_rate DESC, {0}open_orders ASC, {0}id ASC"
    ranked = f"FROM {vendors} c2 WHERE {where} ORDER BY {ranking.format('c2.')}"
    if spread <= 1:
        return f"SELECT c2.id {ranked} LIMIT 1"
    return (
        "SELECT t.id FROM (SELECT r.id, "  # noqa: S608
        f"ROW_NUMBER() OVER (ORDER BY {ranking.format('r.')}) - 1 AS rn, COUNT(*) OVER () AS n "
        "FROM (SELECT c2.id, c2.acceptance_rate, c2.open_orders, c2.capacity "
        f"{ranked} LIMIT {int(spread)}) r"
        ") t WHERE t.rn = h.id %% t.n"  # %% is the modulo operator (parameter style)
    )


@cache
def _statement(
    vendor: str, limited: bool = False, spread: int = 1, headroom: int = 0
) -> _Statement:
    """The load statement for a database vendor; every name comes from the models."""
    sqlite = vendor == "sqlite"
    quote = connection.ops.quote_name
    healing, h_cols = _part(HealingAction, "h", 0, sqlite)
    order, o_cols = _part(Order, "o", healing.end, sqlite)
    vendor_part, v_cols = _part(Vendor, "v", order.end, sqlite)
    candidate_part, c_cols = _part(Vendor, "c", vendor_part.end, sqlite)
    vendors = quote(Vendor._meta.db_table)
    circuits = quote(VendorCircuit._meta.db_table)
    candidate = _candidate_sql(limited=limited, spread=spread, headroom=headroom)
    # The circuit of the order's vendor (vc) and of the candidate (cc).
    circuit_cols = "vc.state, vc.failures, vc.retry_at, cc.state, cc.failures, cc.retry_at"
    sql = (
        f"SELECT {', '.join(h_cols + o_cols + v_cols + c_cols)}, {circuit_cols} "  # noqa: S608
        f"FROM {quote(HealingAction._meta.db_table)} h "
        f"JOIN {quote(Order._meta.db_table)} o ON o.id = h.order_id "
        f"LEFT JOIN {vendors} v ON v.id = o.vendor_id "
        f"LEFT JOIN {vendors} c ON h.recovery_action = %s AND c.id = ({candidate}) "
        f"LEFT JOIN {circuits} vc ON vc.vendor_id = o.vendor_id "
        f"LEFT JOIN {circuits} cc ON cc.vendor_id = c.id "
        "WHERE h.id = %s"
    )
    return _Statement(
        sql=sql,
        claiming_sql=None if sqlite else _claiming(sql),
        healing=healing,
        order=order,
        vendor=vendor_part,
        candidate=candidate_part,
    )


def _claiming(load_sql: str) -> str:
    """The load with the claim in front of it, one statement (PostgreSQL).

    The claim is ``healing.actions.base.claim_take``'s conditional UPDATE
    (the token this task was sent with, an active status) as a
    data-modifying CTE; the SELECT below it reads the rows as they were
    before the claim (one snapshot), the new token comes back in the last
    column. ``set_config(..., true)`` turns ``synchronous_commit`` off for
    this statement's own transaction only: docs/BENCHMARK.md "Heal path,
    issue 15" says why losing this commit in a server crash is safe.
    """
    table = connection.ops.quote_name(HealingAction._meta.db_table)
    claim = (
        f"UPDATE {table} SET recovery_status = %s, claim_token = %s, "  # noqa: S608
        "lease_expires_at = %s, next_attempt_at = NULL, "
        "recovery_attempted_at = COALESCE(recovery_attempted_at, %s), "
        "retry_count = %s, updated_at = %s "
        "WHERE id = %s AND claim_token = %s AND recovery_status IN (%s, %s) "
        "AND set_config('synchronous_commit', 'off', true) IS NOT NULL "
        "RETURNING claim_token"
    )
    select, _, rest = load_sql.partition(" FROM ")
    return (
        f"WITH claimed AS ({claim}) {select}, "  # noqa: S608
        f"(SELECT claimed.claim_token FROM claimed) FROM {rest}"
    )


def _circuit(vendor_id: int, state: Any, failures: Any, retry_at: Any) -> CircuitView:
    if state is None:
        return CircuitView(vendor_id=vendor_id)
    retry = _aware(retry_at) if retry_at is not None else None
    return CircuitView(vendor_id, str(state), int(failures or 0), retry)


@dataclass(frozen=True)
class ClaimRequest:
    """Claim the healing in the load statement, where the database can
    (PostgreSQL): swap ``token`` for ``new_token``, lease until ``lease``."""

    token: uuid.UUID | str
    new_token: uuid.UUID
    lease: datetime
    retries: int
    now: datetime


def _claim_params(claim: ClaimRequest) -> list[Any]:
    return [
        RecoveryStatus.IN_PROGRESS.value,
        claim.new_token,
        claim.lease,
        claim.now,
        claim.retries,
        claim.now,
        None,  # the healing id, filled in by the caller
        str(claim.token),
        *ACTIVE_STATUSES,
    ]


def _load_row(healing_id: int, claim: ClaimRequest | None) -> tuple[_Statement, Any, bool]:
    limit = max(int(settings.HEALING_VENDOR_OFFERS_PER_MINUTE), 0)
    statement = _statement(
        connection.vendor,
        limit > 0,
        max(int(settings.HEALING_REASSIGN_SPREAD), 1),
        max(int(settings.HEALING_REASSIGN_HEADROOM), 0),
    )
    now = timezone.now()
    params: list[Any] = [RecoveryAction.REASSIGN_VENDOR.value, CircuitState.CLOSED.value, now]
    if limit:
        params += [MessageKind.OFFER.value, now - timedelta(minutes=1), limit, limit]
    params.append(healing_id)
    sql, claiming = statement.sql, claim is not None and statement.claiming_sql is not None
    if claiming:
        assert claim is not None and statement.claiming_sql is not None
        claim_params = _claim_params(claim)
        claim_params[6] = healing_id
        sql, params = statement.claiming_sql, claim_params + params
    with orders_sql.cursor() as cursor:
        cursor.execute(sql, params)
        return statement, cursor.fetchone(), claiming


def healing_load(*, healing_id: int, claim: ClaimRequest | None = None) -> Loaded | None:
    """The healing with its order (and vendor) attached, and its candidate vendor.

    With ``claim``, on PostgreSQL the same statement also takes the claim
    (``Loaded.claimed_token``); elsewhere the caller claims on its own.
    """
    statement, row, claiming = _load_row(healing_id, claim)
    if row is None:
        return None
    claimed_token = None
    if claiming:
        claimed_token, row = row[-1], row[:-1]
        if claimed_token is not None and not isinstance(claimed_token, uuid.UUID):
            claimed_token = uuid.UUID(str(claimed_token))
    healing = statement.healing.instance(row)
    order = statement.order.instance(row)
    order.vendor = statement.vendor.instance(row) if order.vendor_id is not None else None
    healing.order = order
    own_state, own_failures, own_retry, c_state, c_failures, c_retry = row[-6:]
    candidate = None
    if row[statement.candidate.start] is not None:
        vendor = statement.candidate.instance(row)
        candidate = Candidate(
            vendor.pk,
            vendor.webhook_url or "",
            _circuit(vendor.pk, c_state, c_failures, c_retry),
            vendor,
        )
    elif healing.recovery_action == RecoveryAction.RETRY_WORKFLOW and order.vendor is not None:
        candidate = Candidate(
            order.vendor.pk,
            order.vendor.webhook_url or "",
            _circuit(order.vendor.pk, own_state, own_failures, own_retry),
            order.vendor,
        )
    return Loaded(
        healing=healing,
        candidate=candidate,
        claimed_token=claimed_token,
        claim_tried=claiming,
    )
