"""The runner table: every recovery action has exactly one runner, and an
unknown action raises instead of falling through to an escalation."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from healing.actions import RUNNERS, UnknownAction, action_run
from healing.actions.base import Claim
from healing.models import ACTIVE_STATUSES, HealingAction, RecoveryAction
from tests.factories import OrderFactory
from tests.healing.conftest import ScriptedGateway
from tests.healing.helpers import initiate

pytestmark = pytest.mark.django_db


def test_every_recovery_action_has_a_runner_named_after_it():
    assert set(RUNNERS) == set(RecoveryAction.values)
    for action, runner in RUNNERS.items():
        assert runner.__module__ == f"healing.actions.{action.lower()}"


def test_an_unknown_action_raises_and_changes_nothing():
    order = OrderFactory(status="PENDING", stuck_minutes=45)
    healing = initiate(order, "CANCEL_ORDER")
    healing.recovery_action = "TELEPORT_ORDER"

    with pytest.raises(UnknownAction):
        action_run(
            healing=healing,
            claim=Claim(healing.claim_token or uuid.uuid4(), ACTIVE_STATUSES),
            candidate=None,
            gateway=ScriptedGateway(),
            now=timezone.now(),
        )

    assert HealingAction.objects.get(pk=healing.pk).recovery_status == "PENDING"
    order.refresh_from_db()
    assert order.status == "PENDING"
