"""Helpers shared by the healing tests: start, run and reload one healing, and
collect what a cycle dispatches."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from healing.cycle import Dispatch
from healing.execution import healing_execute, healing_initiate
from healing.models import HealingAction
from orders.models import Order
from tests.healing.conftest import ScriptedGateway


def initiate(order, action=None):
    return healing_initiate(order=order, trigger="CLI", recovery_action=action)


def execute(healing, gateway=None):
    return healing_execute(
        healing_id=healing.pk, token=healing.claim_token, gateway=gateway or ScriptedGateway()
    )


def reload(healing) -> HealingAction:
    return HealingAction.objects.get(pk=healing.pk)


def age_order(order: Order, minutes: int) -> None:
    """Move an order's stuck clock back: as if it sat there for `minutes`."""
    from orders.models import status_write_allowed

    token = status_write_allowed.set(True)
    try:
        Order.objects.filter(pk=order.pk).update(
            stuck_since=timezone.now() - timedelta(minutes=minutes)
        )
    finally:
        status_write_allowed.reset(token)


def collect() -> tuple[list[tuple[int, str]], Dispatch]:
    """A dispatch that records the (healing id, token) pairs instead of sending them."""
    sent: list[tuple[int, str]] = []
    return sent, sent.extend
