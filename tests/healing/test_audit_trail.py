"""Invariant 13: audit rows are never deleted or rewritten (PostgreSQL triggers).

Append-only tables refuse UPDATE and DELETE; healings, cycles and notifications
(updated by the engine) refuse DELETE only. TRUNCATE (Django's test flush,
seed_marketplace, the benchmark's restore) is not a row operation and works.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

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


def _refused(sql: str, params: list[Any]) -> str:
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


@pytest.mark.postgres
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


@pytest.mark.postgres
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


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_engine_still_updates_healings_cycles_and_notifications(audit_rows):
    now = timezone.now()
    healing, cycle = audit_rows["healing_actions"], audit_rows["healing_cycles"]
    notification = audit_rows["admin_notifications"]

    assert HealingAction.objects.filter(pk=healing.pk).update(resolved_at=now) == 1
    assert HealingCycle.objects.filter(pk=cycle.pk).update(healed=3) == 1
    assert AdminNotification.objects.filter(pk=notification.pk).update(acknowledged_at=now) == 1


@pytest.mark.postgres
@pytest.mark.django_db
def test_an_order_with_history_cannot_be_deleted_through_the_orm(audit_rows):
    order = audit_rows["healing_actions"].order

    with pytest.raises(IntegrityError), transaction.atomic():
        order.delete()

    assert Order.objects.filter(pk=order.pk).exists()
    assert OrderStatusChange.objects.filter(order=order).exists()


@pytest.mark.postgres
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


@pytest.mark.postgres
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


# --- Through the admin: refused for every role -----------------------------------

ADMIN_PAGES = {
    "healing_actions": "healing/healingaction",
    "healing_cycles": "healing/healingcycle",
    "admin_notifications": "notifications/adminnotification",
    "vendor_messages": "orders/vendormessage",
}


@pytest.fixture
def staff(db, make_user):
    from django.contrib.auth import get_user_model

    from tests.api.helpers import PASSWORD

    users = {role: make_user(role) for role in ("ADMIN", "OPERATIONS", "VIEWER")}
    users["superuser"] = get_user_model().objects.create_superuser(
        username="root", password=PASSWORD, email="root@example.com"
    )
    return users


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["superuser", "ADMIN", "OPERATIONS", "VIEWER"])
@pytest.mark.parametrize("table", sorted(ADMIN_PAGES))
def test_deleting_or_editing_an_audit_row_in_the_admin_is_refused(
    audit_rows, staff, client, role, table
):
    row = audit_rows[table]
    client.force_login(staff[role])
    page = f"/admin/{ADMIN_PAGES[table]}/{row.pk}"

    deleted = client.post(f"{page}/delete/", {"post": "yes"})
    edited = client.post(f"{page}/change/", {"title": "x", "status": "FAILED", "reason": "x"})
    bulk = client.post(
        f"/admin/{ADMIN_PAGES[table]}/",
        {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"},
    )

    assert deleted.status_code in (302, 403, 404)
    # A read-only change page re-renders (200) or refuses; either way nothing changes.
    assert edited.status_code in (200, 302, 403, 404)
    assert bulk.status_code in (200, 302, 403)
    fresh = type(row).objects.get(pk=row.pk)

    def fields(obj):
        return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}

    assert fields(fresh) == fields(row)


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["superuser", "ADMIN", "OPERATIONS", "VIEWER"])
def test_the_order_page_deletes_no_history(audit_rows, staff, client, role):
    order = audit_rows["healing_actions"].order
    client.force_login(staff[role])

    client.post(f"/admin/orders/order/{order.pk}/delete/", {"post": "yes"})

    assert Order.objects.filter(pk=order.pk).exists()
    assert OrderStatusChange.objects.filter(order=order).exists()
