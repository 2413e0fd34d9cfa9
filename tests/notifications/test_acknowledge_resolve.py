"""Acknowledging (seen) and resolving (closed; a manual intervention goes back to automation)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from healing.cycle import healing_cycle_run
from healing.detection import order_on_manual_hold
from healing.models import HealingAction, RecoveryStatus
from notifications.models import AdminNotification
from notifications.selectors import notifications_list
from notifications.services import notification_acknowledge, notification_resolve
from tests.factories import (
    AdminNotificationFactory,
    HealingActionFactory,
    OrderFactory,
    UserFactory,
)


@pytest.mark.django_db
def test_acknowledgement_records_the_user_and_is_idempotent():
    notification = AdminNotificationFactory()
    first_admin, second_admin = UserFactory(), UserFactory()

    acknowledged = notification_acknowledge(
        notification=notification, user=first_admin, comment="looking into it"
    )
    first_time = acknowledged.acknowledged_at
    again = notification_acknowledge(notification=notification, user=second_admin, comment="me too")

    assert first_time is not None
    assert again.acknowledged_by == first_admin
    assert again.acknowledged_at == first_time
    assert again.acknowledgement_comment == "looking into it"
    assert again.resolved_at is None  # acknowledging is not resolving
    row = AdminNotification.objects.get(pk=notification.pk)
    assert (row.acknowledged_by, row.acknowledged_at) == (first_admin, first_time)


def _on_manual_hold(order, *, earlier_minutes: int = 5) -> HealingAction:
    return HealingActionFactory(
        order=order,
        issue_type="STUCK_PROCESSING",
        recovery_action="MANUAL_INTERVENTION",
        recovery_status=RecoveryStatus.MANUAL_REQUIRED,
        claim_token=None,
        lease_expires_at=None,
        created_at=timezone.now() - timedelta(minutes=earlier_minutes),
    )


@pytest.mark.django_db
def test_resolving_twice_is_harmless_and_keeps_the_first_resolution():
    order = OrderFactory(status="PROCESSING", stuck_minutes=300)
    healing = _on_manual_hold(order)
    notification = AdminNotificationFactory(
        order=order, healing_action=healing, notification_type="MANUAL_INTERVENTION_REQUIRED"
    )
    first_admin, second_admin = UserFactory(), UserFactory()

    notification_resolve(notification=notification, user=first_admin, note="fixed by phone")
    resolved = notification_resolve(notification=notification, user=second_admin, note="again")

    assert resolved.resolved_by == first_admin and resolved.resolution_note == "fixed by phone"
    # Resolving implies having seen it.
    assert resolved.acknowledged_by == first_admin and resolved.acknowledged_at is not None
    healing.refresh_from_db()
    assert healing.resolved_by == first_admin and healing.resolved_at is not None
    assert not order_on_manual_hold(order_id=order.pk)


@pytest.mark.django_db
def test_resolving_a_healing_failure_does_not_lift_a_manual_hold():
    order = OrderFactory(status="PROCESSING", stuck_minutes=300)
    _on_manual_hold(order)
    failed = AdminNotificationFactory(order=order, notification_type="HEALING_FAILED")

    notification_resolve(notification=failed, user=UserFactory())

    assert order_on_manual_hold(order_id=order.pk)


@pytest.mark.django_db(transaction=True)
def test_resolving_hands_the_order_back_and_the_next_cycle_heals_it(quiet_channels, stuck_rules):
    # A PROCESSING order whose two workflow retries already failed: the ladder
    # is exhausted, so the next cycle escalates it.
    order = OrderFactory(status="PROCESSING", stuck_minutes=240)
    for minutes_ago in (120, 60):
        HealingActionFactory(
            order=order,
            issue_type="STUCK_PROCESSING",
            recovery_action="RETRY_WORKFLOW",
            recovery_status=RecoveryStatus.FAILED,
            error_message="vendor gateway: timeout",
            claim_token=None,
            lease_expires_at=None,
            created_at=timezone.now() - timedelta(minutes=minutes_ago),
            issue_detected_at=timezone.now() - timedelta(minutes=minutes_ago),
        )
    admin = UserFactory()

    healing_cycle_run(trigger="CLI")
    escalated = HealingAction.objects.get(order=order, recovery_status="MANUAL_REQUIRED")
    notification = AdminNotification.objects.get(
        order=order, notification_type="MANUAL_INTERVENTION_REQUIRED"
    )
    assert notification.healing_action_id == escalated.pk

    # On hold: the next cycle leaves it alone.
    held = healing_cycle_run(trigger="CLI")
    assert held.detected == 0
    assert HealingAction.objects.filter(order=order).count() == 3

    notification_resolve(notification=notification, user=admin, note="vendor reachable again")
    result = healing_cycle_run(trigger="CLI")

    assert result.detected == 1
    healed = HealingAction.objects.filter(order=order).order_by("-id").first()
    # Attempts restarted: the ladder's first step, and it succeeded.
    assert healed.attempt_number == 1
    assert (healed.recovery_action, healed.recovery_status) == ("RETRY_WORKFLOW", "SUCCESS")
    escalated.refresh_from_db()
    assert escalated.resolved_by == admin
    notification.refresh_from_db()
    assert notification.resolved_by == admin and notification.resolution_note == (
        "vendor reachable again"
    )
    assert AdminNotification.objects.filter(resolved_at__isnull=True).count() == 0


@pytest.mark.django_db
def test_resolving_a_manual_intervention_closes_the_failures_behind_it():
    order = OrderFactory(status="PROCESSING", stuck_minutes=300)
    _on_manual_hold(order)
    failed = AdminNotificationFactory(order=order, notification_type="HEALING_FAILED")
    elsewhere = AdminNotificationFactory(notification_type="HEALING_FAILED")
    manual = AdminNotificationFactory(order=order, notification_type="MANUAL_INTERVENTION_REQUIRED")
    admin = UserFactory()

    notification_resolve(notification=manual, user=admin)

    failed.refresh_from_db()
    elsewhere.refresh_from_db()
    assert failed.resolved_by == admin and failed.acknowledged_at is not None
    assert failed.resolution_note == f"resolved with notification {manual.pk}"
    assert elsewhere.resolved_at is None


@pytest.mark.django_db
def test_notifications_list_defaults_to_pending_and_filters():
    pending_high = AdminNotificationFactory(severity="HIGH")
    pending_critical = AdminNotificationFactory(
        severity="CRITICAL", notification_type="SYSTEM_ALERT", order=None, dedup_key="guard"
    )
    seen = AdminNotificationFactory(acknowledged_at=timezone.now())
    closed = AdminNotificationFactory(
        acknowledged_at=timezone.now(), resolved_at=timezone.now(), severity="CRITICAL"
    )
    # Resolved by itself (the condition cleared) before anyone saw it: not pending.
    cleared = AdminNotificationFactory(
        resolved_at=timezone.now(), notification_type="SYSTEM_ALERT", order=None, dedup_key="x"
    )

    def ids(queryset) -> set[int]:
        return {n.pk for n in queryset}

    assert ids(notifications_list()) == {pending_high.pk, pending_critical.pk}
    assert ids(notifications_list(acknowledged=True)) == {seen.pk, closed.pk}
    assert ids(notifications_list(acknowledged=None)) == {
        pending_high.pk,
        pending_critical.pk,
        seen.pk,
        closed.pk,
        cleared.pk,
    }
    assert ids(notifications_list(acknowledged=None, resolved=True)) == {closed.pk, cleared.pk}
    assert ids(notifications_list(acknowledged=None, resolved=False)) == {
        pending_high.pk,
        pending_critical.pk,
        seen.pk,
    }
    assert ids(notifications_list(acknowledged=None, severity="CRITICAL")) == {
        pending_critical.pk,
        closed.pk,
    }
    assert ids(notifications_list(notification_type="SYSTEM_ALERT")) == {pending_critical.pk}
    newest_first = list(notifications_list(acknowledged=None))
    assert newest_first == sorted(newest_first, key=lambda n: (n.created_at, n.pk), reverse=True)
