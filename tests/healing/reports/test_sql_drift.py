"""The seed's SQL objects and the Python rules cannot drift apart.

- ``detect_stuck_orders()`` / ``stuck_orders_view`` return the orders
  ``healing.detection.stuck_orders_detect`` returns, under several rule sets.
- ``auto_heal_order()`` accepts, refuses and records what
  ``healing.execution.healing_initiate`` does.
- Migrations hold frozen SQL, and the newest frozen copy of each object is the
  live text of ``healing.sql_objects``.
"""

from __future__ import annotations

import importlib
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from healing import sql_objects
from healing.detection import rules_enabled, stuck_orders_detect
from healing.execution import healing_initiate
from healing.models import HealingAction, StuckRule
from orders.errors import DomainError
from orders.models import OPEN_STATUSES, Order
from tests.factories import HealingActionFactory, OrderFactory, VendorFactory

MIGRATIONS = Path(sql_objects.__file__).parent / "migrations"


# --- Frozen SQL in migrations -------------------------------------------------------


def _sql_migrations() -> list[Any]:
    modules = []
    for path in sorted(MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.py")):
        module = importlib.import_module(f"healing.migrations.{path.stem}")
        if hasattr(module, "SQL_OBJECTS"):
            modules.append(module)
    return modules


def test_the_newest_frozen_sql_of_every_object_is_the_live_text():
    newest: dict[str, str] = {}
    for module in _sql_migrations():
        newest.update(module.SQL_OBJECTS)

    assert list(newest) == list(sql_objects.SQL_OBJECTS)
    changed = [name for name, sql in sql_objects.SQL_OBJECTS.items() if newest[name] != sql]
    assert not changed, f"{changed} changed in healing/sql_objects.py: add a migration with it"


def test_sql_migrations_import_no_live_module():
    for module in _sql_migrations():
        source = Path(module.__file__).read_text()
        assert not re.search(r"^\s*(from|import)\s+(healing|orders|notifications)\b", source, re.M)


def test_the_stuck_view_reads_the_open_statuses_of_the_python_side():
    lists = re.findall(r"[wv]\.status IN \(([^)]*)\)", sql_objects.STUCK_ORDERS_ROWS)
    assert len(lists) == 2  # the wall-clock scan and the vendor-time scan
    for listed in lists:
        assert tuple(re.findall(r"'(\w+)'", listed)) == OPEN_STATUSES


# --- detect_stuck_orders() == stuck_orders_detect --------------------------------------


def _fetch(sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        columns = [c.name for c in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _healing(order: Order, *, status: str, ago: int, **kwargs: Any) -> HealingAction:
    at = timezone.now() - timedelta(minutes=ago)
    final = status not in ("PENDING", "IN_PROGRESS")
    defaults: dict[str, Any] = {
        "issue_type": f"STUCK_{order.status}" if order.status != "SHIPPED" else "STUCK_PENDING",
        "recovery_status": status,
        "created_at": at,
        "issue_detected_at": at,
        "skip_reason": "RECOVERED" if status == "SKIPPED" else "",
        "completed_at": at if final else None,
        "claim_token": None if final else kwargs.pop("claim_token", None),
        "lease_expires_at": None if final else kwargs.pop("lease", None),
    }
    defaults.update(kwargs)
    return HealingActionFactory(order=order, **defaults)


def _due_in(order: Order, *, minutes: int) -> None:
    from orders.models import status_write_allowed

    token = status_write_allowed.set(True)
    try:
        Order.objects.filter(pk=order.pk).update(due_at=timezone.now() + timedelta(minutes=minutes))
    finally:
        status_write_allowed.reset(token)


@pytest.fixture
def history():
    """Orders in every state detection distinguishes."""
    VendorFactory()
    OrderFactory(status="PENDING", stuck_minutes=45)  # plain
    OrderFactory(status="PENDING", stuck_minutes=10)  # under 30 min
    OrderFactory(status="PENDING", stuck_minutes=25)  # under 30, over 20
    held = OrderFactory(status="PENDING", stuck_minutes=300)
    _healing(held, status="MANUAL_REQUIRED", ago=200, recovery_action="MANUAL_INTERVENTION")
    resolved = OrderFactory(status="PENDING", stuck_minutes=280)
    _healing(resolved, status="FAILED", ago=150)
    _healing(
        resolved,
        status="MANUAL_REQUIRED",
        ago=100,
        recovery_action="MANUAL_INTERVENTION",
        resolved_at=timezone.now() - timedelta(minutes=50),
    )
    _healing(resolved, status="FAILED", ago=40)  # the one attempt since the resolution
    healed = OrderFactory(status="CONFIRMED", stuck_minutes=90)
    _healing(
        healed,
        status="IN_PROGRESS",
        ago=1,
        claim_token="3b0f3a0e-0000-4000-8000-000000000001",
        lease=timezone.now() + timedelta(minutes=5),
    )
    skipped = OrderFactory(status="CONFIRMED", stuck_minutes=75)
    for ago in (30, 20, 10):
        _healing(skipped, status="SKIPPED", ago=ago)  # not attempts
    lost = OrderFactory(status="ACCEPTED", stuck_minutes=130)
    _healing(
        lost,
        status="PENDING",
        ago=20,
        claim_token="3b0f3a0e-0000-4000-8000-000000000002",
        lease=timezone.now() - timedelta(minutes=1),
    )
    retried = OrderFactory(status="PROCESSING", stuck_minutes=400)
    for ago in (300, 200):
        _healing(retried, status="FAILED", ago=ago, recovery_action="RETRY_WORKFLOW")
    OrderFactory(status="PROCESSING", stuck_minutes=70)
    # Vendor time (issue 18): for an order whose vendor keeps a calendar the
    # due time decides, not the stuck clock.
    _due_in(OrderFactory(status="CONFIRMED", stuck_minutes=600), minutes=60)  # not due yet
    _due_in(OrderFactory(status="CONFIRMED", stuck_minutes=5), minutes=-5)  # due: stuck
    OrderFactory(status="SHIPPED", stuck_minutes=900)  # no rule for SHIPPED
    OrderFactory(status="DELIVERED", stuck_minutes=900)  # finished


RULE_SETS: dict[str, dict[str, dict[str, Any]]] = {
    "defaults": {},
    "thresholds": {
        "PENDING": {"threshold_minutes": 20},
        "CONFIRMED": {"threshold_minutes": 80},
        "ACCEPTED": {"threshold_minutes": 500},
        "PROCESSING": {"threshold_minutes": 60},
    },
    "disabled and dry run": {
        "PENDING": {"enabled": False},
        "CONFIRMED": {"dry_run": True},
    },
    "ladders": {
        "PENDING": {"ladder": ["CANCEL_ORDER"]},
        "PROCESSING": {"ladder": []},
        "ACCEPTED": {"ladder": ["RETRY_WORKFLOW", "RETRY_WORKFLOW", "CANCEL_ORDER"]},
    },
    "long ladder": {
        "PROCESSING": {"ladder": ["RETRY_WORKFLOW"] * 3 + ["CANCEL_ORDER"]},
        "CONFIRMED": {"threshold_minutes": 1},
    },
}


def _rows(found: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (r["order_id"], r["status"], r["issue_type"], r["attempts"], r["recommended_action"])
        + (r["redispatch_healing_id"],)
        for r in found
    )


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize("rule_set", list(RULE_SETS))
def test_detect_stuck_orders_returns_what_detection_returns(history, rule_set):
    for status, changes in RULE_SETS[rule_set].items():
        StuckRule.objects.filter(status=status).update(**changes)
    rules = rules_enabled()

    sql = _fetch("SELECT * FROM detect_stuck_orders()")
    engine = stuck_orders_detect(rules=rules)

    python = [
        {
            "order_id": s.order_id,
            "status": s.status,
            "issue_type": s.issue_type,
            "attempts": s.attempts,
            "recommended_action": s.recommended_action,
            "redispatch_healing_id": s.expired_healing_id,
        }
        for s in engine
    ]
    assert _rows(sql) == _rows(python)
    assert sql, "the scenario detects something under every rule set"
    # Same ages (the database's now() is the transaction's start: a minute
    # boundary may fall between the two clocks) and the same dry-run flag.
    ages = {r["order_id"]: r["stuck_minutes"] for r in sql}
    for item in engine:
        assert abs(ages[item.order_id] - item.stuck_minutes) <= 1
    view = {r["order_id"]: r for r in _fetch("SELECT * FROM stuck_orders_view")}
    assert {s.order_id: s.dry_run for s in engine} == {
        s.order_id: view[s.order_id]["dry_run"] for s in engine
    }


# --- auto_heal_order() == healing_initiate -------------------------------------------


class _Undo(Exception):
    pass


def _outcome(call: Any) -> dict[str, Any]:
    """What one way of initiating does, then undone (a savepoint)."""
    result: dict[str, Any] = {}
    try:
        with transaction.atomic():
            try:
                healing_id = call()
            except (DomainError, DatabaseError):
                result["refused"] = True
                raise _Undo from None
            healing = HealingAction.objects.get(pk=healing_id)
            result.update(
                id=healing.pk,
                issue_type=healing.issue_type,
                recovery_action=healing.recovery_action,
                recovery_status=healing.recovery_status,
                attempt_number=healing.attempt_number,
                detected_status=healing.detected_status,
                episode_started_at=healing.episode_started_at,
                previous_vendor_id=healing.previous_vendor_id,
                claimed=healing.claim_token is not None,
            )
            raise _Undo
    except _Undo:
        pass
    return result


def _python(order_id: int, issue_type: str | None, action: str | None) -> int:
    order = Order.objects.get(pk=order_id)
    return healing_initiate(
        order=order, trigger="SQL", issue_type=issue_type, recovery_action=action
    ).pk


def _sql(order_id: int, issue_type: str | None, action: str | None) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT auto_heal_order(%s, %s, %s)", [order_id, issue_type, action])
        return cursor.fetchone()[0]


@pytest.mark.postgres
@pytest.mark.django_db
def test_auto_heal_order_decides_as_healing_initiate():
    VendorFactory()
    orders = {
        "PENDING stuck": OrderFactory(status="PENDING", stuck_minutes=45),
        "PENDING fresh": OrderFactory(status="PENDING", stuck_minutes=10),
        "CONFIRMED retried": OrderFactory(status="CONFIRMED", stuck_minutes=90),
        "PROCESSING": OrderFactory(status="PROCESSING", stuck_minutes=400),
        "SHIPPED": OrderFactory(status="SHIPPED", stuck_minutes=500),
        "DELIVERED": OrderFactory(status="DELIVERED", stuck_minutes=500),
        "ACCEPTED healing": OrderFactory(status="ACCEPTED", stuck_minutes=200),
    }
    _healing(orders["CONFIRMED retried"], status="FAILED", ago=60)
    active = _healing(
        orders["ACCEPTED healing"],
        status="IN_PROGRESS",
        ago=2,
        claim_token="3b0f3a0e-0000-4000-8000-000000000003",
        lease=timezone.now() + timedelta(minutes=5),
    )
    issue_types = (None, "match", "STUCK_CONFIRMED")
    actions = (None, "REASSIGN_VENDOR", "RETRY_WORKFLOW", "CANCEL_ORDER", "MANUAL_INTERVENTION")

    differences = []
    seen = {"created": 0, "refused": 0, "existing": 0}
    for name, order in orders.items():
        for issue in issue_types:
            issue_type = f"STUCK_{order.status}" if issue == "match" else issue
            for action in actions:
                python = _outcome(lambda o=order, i=issue_type, a=action: _python(o.pk, i, a))
                sql = _outcome(lambda o=order, i=issue_type, a=action: _sql(o.pk, i, a))
                python.pop("id", None) if python.get("id") != active.pk else None
                sql.pop("id", None) if sql.get("id") != active.pk else None
                if python != sql:
                    differences.append((name, issue_type, action, python, sql))
                kind = (
                    "refused"
                    if python.get("refused")
                    else "existing"
                    if python.get("id") == active.pk
                    else "created"
                )
                seen[kind] += 1

    assert not differences, differences
    assert all(seen.values()), seen  # every branch was exercised
