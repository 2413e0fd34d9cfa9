"""Manual actions for an order on manual hold, through the API (ADMIN)."""

from __future__ import annotations

import pytest

from healing.models import HealingAction, Trigger
from notifications.models import AdminNotification
from orders.models import CreditEntry, OrderStatusChange
from tests.factories import (
    AdminNotificationFactory,
    HealingActionFactory,
    OrderFactory,
    VendorFactory,
)

pytestmark = pytest.mark.usefixtures("api_defaults", "rules")


def _url(order_id, act: str) -> str:
    return f"/api/v1/self-healing/orders/{order_id}/{act}"


@pytest.fixture
def held(db):
    """An ACCEPTED credit order whose ladder is spent: a hold and its notification."""
    order = OrderFactory(status="ACCEPTED", stuck_minutes=300)
    hold = HealingActionFactory(
        order=order,
        recovery_status="MANUAL_REQUIRED",
        recovery_action="MANUAL_INTERVENTION",
        lease_expires_at=None,
        claim_token=None,
    )
    notification = AdminNotificationFactory(
        order=order,
        healing_action=hold,
        notification_type="MANUAL_INTERVENTION_REQUIRED",
        title="Manual intervention required",
    )
    return {"order": order, "hold": hold, "notification": notification}


def _closed(held, admin) -> None:
    held["hold"].refresh_from_db()
    held["notification"].refresh_from_db()
    assert held["hold"].resolved_by_id == admin.pk and held["hold"].resolved_at
    assert held["notification"].resolved_by_id == admin.pk and held["notification"].resolved_at


def _last_change(order) -> OrderStatusChange:
    change = OrderStatusChange.objects.filter(order=order).order_by("-created_at", "-id").first()
    assert change is not None, f"order {order.pk} has no status change"
    return change


def test_cancel_and_refund(held, make_user):
    from tests.api.helpers import bearer_client

    admin = make_user("ADMIN")
    refunds_before = CreditEntry.objects.filter(order=held["order"], kind="REFUND").count()

    response = bearer_client(admin).post(
        _url(held["order"].pk, "cancel"), {"note": "buyer asked"}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["order"]["status"] == "CANCELLED"
    assert body["holdsResolved"] == 1 and body["notificationsResolved"] == 1
    change = _last_change(held["order"])
    assert (change.to_status, change.actor_type, change.actor_user_id) == (
        "CANCELLED",
        "USER",
        admin.pk,
    )
    assert "buyer asked" in change.reason
    assert CreditEntry.objects.filter(order=held["order"], kind="REFUND").count() == (
        refunds_before + 1
    )
    _closed(held, admin)


def test_reassign_to_a_chosen_vendor_that_never_had_the_order(held, make_user):
    from tests.api.helpers import bearer_client

    admin = make_user("ADMIN")
    client = bearer_client(admin)
    fresh = VendorFactory()

    previous = client.post(
        _url(held["order"].pk, "reassign"), {"vendorId": held["order"].vendor_id}, format="json"
    )
    assert previous.status_code == 409  # it has the order now: never back to a vendor that had it

    response = client.post(
        _url(held["order"].pk, "reassign"), {"vendorId": fresh.pk}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["order"] == {
        "id": held["order"].pk,
        "number": held["order"].number,
        "status": "PENDING",
        "vendorId": fresh.pk,
    }
    change = _last_change(held["order"])
    assert (change.to_status, change.to_vendor_id, change.actor_type, change.actor_user_id) == (
        "PENDING",
        fresh.pk,
        "USER",
        admin.pk,
    )
    _closed(held, admin)
    missing = client.post(_url(held["order"].pk, "reassign"), {"vendorId": 999999}, format="json")
    assert missing.status_code in (404, 409)


def test_heal_now_with_a_chosen_action(held, make_user):
    from tests.api.helpers import bearer_client

    admin = make_user("ADMIN")
    VendorFactory()  # somewhere to go

    response = bearer_client(admin).post(
        _url(held["order"].pk, "heal"), {"recoveryAction": "REASSIGN_VENDOR"}, format="json"
    )

    assert response.status_code == 200, response.content
    healing = HealingAction.objects.get(pk=response.json()["healing"]["id"])
    assert (healing.trigger, healing.recovery_action, healing.requested_by_id) == (
        Trigger.OPERATOR,
        "REASSIGN_VENDOR",
        admin.pk,
    )
    assert healing.recovery_status == "SUCCESS"
    assert response.json()["order"]["status"] == "PENDING"
    _closed(held, admin)


def test_an_order_not_on_hold_is_refused(db, admin_api):
    order = OrderFactory(status="PENDING", stuck_minutes=100)

    response = admin_api.post(_url(order.pk, "cancel"), {}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "action_not_applicable"
    order.refresh_from_db()
    assert order.status == "PENDING"


@pytest.mark.parametrize("role", ["OPERATIONS", "VIEWER", "anonymous"])
@pytest.mark.parametrize("act", ["cancel", "reassign", "heal"])
def test_only_admins_may_act(held, client_for, role, act):
    response = client_for(role).post(_url(held["order"].pk, act), {}, format="json")

    assert response.status_code in (401, 403)
    assert not AdminNotification.objects.filter(resolved_at__isnull=False).exists()
