"""Invariant 13: audit rows are never deleted or rewritten (PostgreSQL triggers).

Append-only tables refuse UPDATE and DELETE; healings, cycles and notifications
(updated by the engine) refuse DELETE only. TRUNCATE (Django's test flush,
seed_marketplace, the benchmark's restore) is not a row operation and works.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from healing.models import HealingAction, HealingCycle
from notifications.models import AdminNotification
from orders.models import CreditEntry, Order, OrderStatusChange, VendorMessage
from tests.factories import (
    AdminNotificationFactory,
    CreditEntryFactory,
    HealingActionFactory,
    HealingCycleFactory,
    OrderFactory,
    OrderStatusChangeFactory,
    VendorMessageFactory,
)

pytestmark = pytest.mark.postgres


def _refused(sql: str, params: list[object]) -> str:
    with pytest.raises(IntegrityError) as caught, transaction.atomic(), connection.cursor() as c:
        c.execute(sql, params)
    return str(caught.value)


@pytest.fixture
def audit_rows(db):
    order = OrderFactory()
    cycle = HealingCycleFactory()
    healing = HealingActionFactory(order=order, cycle=cycle, recovery_status="FAILED")
    return {
        "order_status_changes": OrderStatusChangeFactory(order=order),
        "vendor_messages": VendorMessageFactory(order=order),
        "credit_entries": CreditEntryFactory(),
        "healing_actions": healing,
        "healing_cycles": cycle,
        "admin_notifications": AdminNotificationFactory(order=order, healing_action=healing),
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    "table",
    [
        "healing_actions",
        "healing_cycles",
        "admin_notifications",
        "order_status_changes",
        "vendor_messages",
        "credit_entries",
    ],
)
def test_a_raw_sql_delete_of_an_audit_row_fails(audit_rows, table):
    row = audit_rows[table]

    message = _refused(f"DELETE FROM {table} WHERE id = %s", [row.pk])  # noqa: S608

    assert "invariant 13" in message and table in message
    assert type(row).objects.filter(pk=row.pk).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("order_status_changes", "reason", "rewritten"),
        ("vendor_messages", "status", "FAILED"),
        ("credit_entries", "amount", 0),
    ],
)
def test_append_only_rows_cannot_be_rewritten(audit_rows, table, column, value):
    row = audit_rows[table]

    message = _refused(f"UPDATE {table} SET {column} = %s WHERE id = %s", [value, row.pk])  # noqa: S608

    assert "UPDATE" in message


@pytest.mark.django_db
def test_the_engine_still_updates_healings_cycles_and_notifications(audit_rows):
    now = timezone.now()
    healing, cycle = audit_rows["healing_actions"], audit_rows["healing_cycles"]
    notification = audit_rows["admin_notifications"]

    assert HealingAction.objects.filter(pk=healing.pk).update(resolved_at=now) == 1
    assert HealingCycle.objects.filter(pk=cycle.pk).update(healed=3) == 1
    assert AdminNotification.objects.filter(pk=notification.pk).update(acknowledged_at=now) == 1


@pytest.mark.django_db
def test_an_order_with_history_cannot_be_deleted_through_the_orm(audit_rows):
    order = audit_rows["healing_actions"].order

    with pytest.raises(IntegrityError), transaction.atomic():
        order.delete()

    assert Order.objects.filter(pk=order.pk).exists()
    assert OrderStatusChange.objects.filter(order=order).exists()


@pytest.mark.django_db(transaction=True)
def test_the_prune_setting_is_local_to_its_transaction(audit_rows):
    message = audit_rows["vendor_messages"]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('audit.allow_prune', 'on', true)")
        VendorMessage.objects.filter(pk=message.pk).delete()
    assert not VendorMessage.objects.filter(pk=message.pk).exists()

    entry = audit_rows["credit_entries"]
    _refused("DELETE FROM credit_entries WHERE id = %s", [entry.pk])
    assert CreditEntry.objects.filter(pk=entry.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_truncate_still_empties_the_audit_tables_for_rebuilds_and_test_flushes():
    order = OrderFactory()
    HealingActionFactory(order=order, created_at=timezone.now() - timedelta(days=1))
    AdminNotificationFactory(order=order)

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE admin_notification_deliveries, admin_notifications, healing_actions, "
            "healing_cycles, vendor_messages, credit_entries, order_status_changes "
            "RESTART IDENTITY CASCADE"
        )

    assert not HealingAction.objects.exists()
    assert not OrderStatusChange.objects.exists()
