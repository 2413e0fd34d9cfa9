"""A user in an order's status history is deactivated, never deleted (the audit trail).

The actor FK was SET_NULL: deleting the user UPDATEd order_status_changes,
which the append-only trigger refuses on PostgreSQL, so the delete was a
database error (a 500 in the admin). Now it is refused up front, and the
admin says to deactivate instead.
"""

from __future__ import annotations

import pytest
from django.db.models import ProtectedError
from django.urls import reverse

from api.admin import DEACTIVATE_INSTEAD
from api.models import TokenRevocation
from orders import services
from orders.models import OrderStatusChange
from tests.factories import OrderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def actor(django_user_model):
    """A user who cancelled an order: their id is in its status history."""
    user = django_user_model.objects.create_user("clerk", password="pw-123456-x")
    order = OrderFactory()
    services.order_cancel(order=order, actor=services.Actor.user(user), reason="buyer asked")
    return user


@pytest.fixture
def root_client(client, django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw-123456-x")
    client.force_login(root)
    return client


def _url(model, view: str, *args) -> str:
    meta = model._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_{view}", args=args)


def test_deleting_the_model_is_refused_and_the_history_keeps_its_actor(actor, django_user_model):
    with pytest.raises(ProtectedError):
        actor.delete()
    assert django_user_model.objects.filter(pk=actor.pk).exists()
    assert OrderStatusChange.objects.filter(actor_user=actor).count() == 1
    # A user who never acted on an order can still be deleted.
    spare = django_user_model.objects.create_user("spare", password="pw-123456-x")
    spare.delete()
    assert not django_user_model.objects.filter(pk=spare.pk).exists()


def test_the_admin_delete_page_refuses_and_offers_deactivation(
    actor, root_client, django_user_model
):
    url = _url(django_user_model, "delete", actor.pk)
    page = root_client.get(url)
    assert page.status_code == 200
    assert "protected related objects" in page.content.decode()
    assert DEACTIVATE_INSTEAD.replace("'", "&#x27;") in page.content.decode()

    confirmed = root_client.post(url, {"post": "yes"})
    assert confirmed.status_code == 200  # the refusal again, not a redirect or a 500
    assert django_user_model.objects.filter(pk=actor.pk).exists()


def test_the_bulk_delete_action_refuses_too(actor, root_client, django_user_model):
    response = root_client.post(
        _url(django_user_model, "changelist"),
        {"action": "delete_selected", "_selected_action": [actor.pk], "post": "yes"},
    )
    assert response.status_code == 200
    assert "protected related objects" in response.content.decode()
    assert django_user_model.objects.filter(pk=actor.pk).exists()


def test_the_deactivate_action_keeps_the_user_and_logs_them_out(
    actor, root_client, django_user_model
):
    response = root_client.post(
        _url(django_user_model, "changelist"),
        {"action": "users_deactivate_action", "_selected_action": [actor.pk]},
    )
    assert response.status_code == 302
    actor.refresh_from_db()
    assert actor.is_active is False
    assert TokenRevocation.objects.filter(user=actor).exists()
    assert OrderStatusChange.objects.filter(actor_user=actor).count() == 1
