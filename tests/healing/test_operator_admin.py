"""Operator tools in the admin: manual actions on orders and notifications, redrive, export."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.admin import helpers

from healing.models import HealingAction, Trigger
from orders.models import OrderStatusChange
from tests.factories import (
    AdminNotificationFactory,
    HealingActionFactory,
    OrderFactory,
    VendorFactory,
)

pytestmark = pytest.mark.usefixtures("rules")


@pytest.fixture
def held(db):
    order = OrderFactory(status="ACCEPTED", stuck_minutes=300)
    hold = HealingActionFactory(
        order=order,
        recovery_status="MANUAL_REQUIRED",
        recovery_action="MANUAL_INTERVENTION",
        lease_expires_at=None,
        claim_token=None,
    )
    notification = AdminNotificationFactory(
        order=order, healing_action=hold, notification_type="MANUAL_INTERVENTION_REQUIRED"
    )
    return {"order": order, "hold": hold, "notification": notification}


def _act(client, page: str, action: str, pk: int, **extra):
    return client.post(
        f"/admin/{page}/", {"action": action, helpers.ACTION_CHECKBOX_NAME: [pk], **extra}
    )


def _resolved(held, user) -> bool:
    held["hold"].refresh_from_db()
    held["notification"].refresh_from_db()
    return held["hold"].resolved_by_id == user.pk and held["notification"].resolved_by_id == user.pk


def test_cancel_from_the_order_list(held, make_user, client):
    admin_user = make_user("ADMIN")
    client.force_login(admin_user)

    response = _act(client, "orders/order", "manual_cancel", held["order"].pk)

    assert response.status_code == 302
    held["order"].refresh_from_db()
    assert held["order"].status == "CANCELLED"
    change = OrderStatusChange.objects.filter(order=held["order"]).latest("created_at")
    assert (change.actor_type, change.actor_user_id) == ("USER", admin_user.pk)
    assert _resolved(held, admin_user)


def test_reassign_from_the_notification_to_a_chosen_vendor(held, make_user, client):
    admin_user = make_user("ADMIN")
    client.force_login(admin_user)
    chosen = VendorFactory(name="Chosen vendor")
    page = "notifications/adminnotification"

    form = _act(client, page, "manual_reassign", held["notification"].pk)
    assert form.status_code == 200
    assert b"Chosen vendor" in form.content
    assert held["order"].vendor.name.encode() not in form.content  # it had the order

    done = _act(
        client,
        page,
        "manual_reassign",
        held["notification"].pk,
        apply="1",
        **{f"vendor-{held['order'].pk}": chosen.pk},
    )

    assert done.status_code == 302
    held["order"].refresh_from_db()
    assert (held["order"].status, held["order"].vendor_id) == ("PENDING", chosen.pk)
    assert _resolved(held, admin_user)


def test_heal_now_from_the_notification(held, make_user, client):
    admin_user = make_user("ADMIN")
    client.force_login(admin_user)
    VendorFactory()

    _act(client, "notifications/adminnotification", "manual_heal_reassign", held["notification"].pk)

    healing = HealingAction.objects.get(trigger=Trigger.OPERATOR)
    assert (healing.recovery_action, healing.requested_by_id) == ("REASSIGN_VENDOR", admin_user.pk)
    assert _resolved(held, admin_user)


@pytest.mark.parametrize("role", ["OPERATIONS", "VIEWER"])
def test_manual_actions_are_admin_only(held, make_user, client, role):
    client.force_login(make_user(role))

    _act(client, "orders/order", "manual_cancel", held["order"].pk)

    held["order"].refresh_from_db()
    assert held["order"].status == "ACCEPTED"
    held["hold"].refresh_from_db()
    assert held["hold"].resolved_at is None


def test_redrive_and_export_selected_healings(db, make_user, client, monkeypatch):
    monkeypatch.setattr("healing.redrive.healings_dispatch", lambda pairs, **kw: None)
    client.force_login(make_user("OPERATIONS"))
    failed = HealingActionFactory(
        order=OrderFactory(stuck_minutes=90), recovery_status="FAILED", claim_token=None
    )

    exported = _act(client, "healing/healingaction", "export_csv", failed.pk)
    rows = list(csv.DictReader(io.StringIO(b"".join(exported.streaming_content).decode())))
    assert [row["id"] for row in rows] == [str(failed.pk)]

    _act(client, "healing/healingaction", "redrive_selected", failed.pk)

    redriven = HealingAction.objects.get(trigger=Trigger.REDRIVE)
    assert redriven.order_id == failed.order_id
