"""Raising: only on failure, the seed's content, one open notification per (order, type)."""

from __future__ import annotations

import threading
import time

import pytest
from django.core import mail
from django.db import connection, transaction
from django.utils import timezone

from healing.cycle import healing_cycle_run
from healing.models import HealingAction
from notifications.models import AdminNotification, NotificationDelivery
from notifications.services import notification_raise
from tests.factories import OrderFactory, VendorFactory


def _raise(order_id: int, **overrides):
    return notification_raise(
        notification_type=overrides.pop("notification_type", "HEALING_FAILED"),
        severity=overrides.pop("severity", "HIGH"),
        title=overrides.pop("title", "Healing failed"),
        message=overrides.pop("message", "boom"),
        order_id=order_id,
        **overrides,
    )


@pytest.mark.django_db
def test_a_repeat_counts_an_occurrence_and_is_delivered_once(
    quiet_channels, django_capture_on_commit_callbacks
):
    order = OrderFactory()
    with django_capture_on_commit_callbacks(execute=True) as first:
        raised = _raise(order.pk, message="first")
    with django_capture_on_commit_callbacks(execute=True) as second:
        again = _raise(order.pk, message="second")

    assert raised.created and not again.created
    assert raised.id == again.id
    row = AdminNotification.objects.get()
    assert (row.occurrences, row.message) == (2, "second")
    # Delivery is scheduled after commit for the new notification only.
    assert len(first) == 1 and len(second) == 0
    assert len(mail.outbox) == 1
    assert row.sent is True


@pytest.mark.django_db
def test_delivery_waits_for_the_raising_transaction_to_commit(
    quiet_channels, django_capture_on_commit_callbacks
):
    order = OrderFactory()
    with django_capture_on_commit_callbacks(execute=False) as callbacks, transaction.atomic():
        _raise(order.pk)
        assert NotificationDelivery.objects.count() == 0
        assert mail.outbox == []
    assert len(callbacks) == 1
    callbacks[0]()
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_a_resolved_notification_does_not_absorb_a_new_failure(quiet_channels):
    order = OrderFactory()
    first = _raise(order.pk)
    AdminNotification.objects.filter(pk=first.id).update(resolved_at=timezone.now())
    second = _raise(order.pk)
    assert second.created and second.id != first.id


@pytest.mark.django_db
def test_system_conditions_dedupe_on_their_key(quiet_channels):
    a = notification_raise(
        notification_type="SYSTEM_ALERT",
        severity="CRITICAL",
        title="x",
        message="y",
        dedup_key="beat_down",
    )
    b = notification_raise(
        notification_type="SYSTEM_ALERT",
        severity="CRITICAL",
        title="x",
        message="y",
        dedup_key="beat_down",
    )
    assert a.id == b.id and b.occurrences == 2
    with pytest.raises(ValueError):
        notification_raise(notification_type="SYSTEM_ALERT", severity="LOW", title="", message="")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_raises_leave_one_open_notification(quiet_channels):
    order = OrderFactory()
    barrier = threading.Barrier(2)
    results: list[object] = [None, None]

    def raise_and_hold(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            with transaction.atomic():
                results[index] = _raise(order.pk, message=f"from thread {index}")
                # Hold the transaction open so the other raise must wait on the
                # unique index instead of running after this one committed.
                time.sleep(0.3)
        except BaseException as exc:
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=raise_and_hold, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not any(isinstance(r, BaseException) for r in results), results
    assert sorted(r.occurrences for r in results) == [1, 2]
    assert results[0].id == results[1].id
    row = AdminNotification.objects.get(order=order, notification_type="HEALING_FAILED")
    assert row.occurrences == 2
    # Delivered once: only the raise that created the row scheduled delivery.
    assert NotificationDelivery.objects.filter(notification=row, channel="email").count() == 1
    assert len(mail.outbox) == 1


# --- Through the healing engine ------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_no_notification_when_a_healing_succeeds(quiet_channels, stuck_rules):
    VendorFactory()
    OrderFactory(status="PENDING", stuck_minutes=45)
    OrderFactory(status="CONFIRMED", stuck_minutes=61)
    OrderFactory(status="PROCESSING", stuck_minutes=200)

    result = healing_cycle_run(trigger="CLI")

    assert result.detected == 3
    assert set(HealingAction.objects.values_list("recovery_status", flat=True)) == {"SUCCESS"}
    assert AdminNotification.objects.count() == 0
    assert mail.outbox == []


@pytest.mark.django_db(transaction=True)
def test_both_failure_types_carry_the_seeds_content(quiet_channels, stuck_rules):
    # A CONFIRMED order with no vendor: every workflow retry fails, the ladder
    # (RETRY_WORKFLOW x2) runs out, and the order escalates.
    order = OrderFactory(status="CONFIRMED", vendor=None, stuck_minutes=75)

    healing_cycle_run(trigger="CLI")
    healing_cycle_run(trigger="CLI")

    failed = AdminNotification.objects.get(order=order, notification_type="HEALING_FAILED")
    assert failed.severity == "HIGH"
    assert failed.occurrences == 2  # counted on the open notification, not a new row
    d = failed.details
    assert d["order"]["order_number"] == order.number
    assert d["order"]["order_id"] == order.pk
    assert {"buyer_id", "payment_method", "total", "stuck_since"} <= set(d["order"])
    assert d["issue_type"] == "STUCK_CONFIRMED"
    assert d["recovery_action"] == "RETRY_WORKFLOW"
    assert d["attempts"] == 2
    assert d["error_message"] == "no vendor to contact"
    assert d["stuck_minutes"] >= 75 and d["current_status"] == "CONFIRMED"
    assert "no vendor to contact" in [row["error_message"] for row in d["history"]]
    assert d["recommended_action"]
    assert order.number in failed.title and "no vendor to contact" in failed.message

    healing_cycle_run(trigger="CLI")

    manual = AdminNotification.objects.get(
        order=order, notification_type="MANUAL_INTERVENTION_REQUIRED"
    )
    assert manual.severity == "HIGH"
    m = manual.details
    assert m["order"]["order_number"] == order.number
    assert m["stuck_minutes"] >= 75 and m["current_status"] == "CONFIRMED"
    assert m["attempts"] == 2
    assert m["issue_type"] == "STUCK_CONFIRMED"
    assert m["error_message"] == "no vendor to contact"
    assert [row["recovery_status"] for row in m["history"]][1:] == ["FAILED", "FAILED"]
    assert "vendor" in m["recommended_action"].lower()
    assert m["recommended_action"] in manual.message
    # Both went out by email with the order number and the history.
    subjects = [message.subject for message in mail.outbox]
    assert any("Healing failed" in s for s in subjects)
    assert any("Manual intervention required" in s for s in subjects)
    body = next(m.body for m in mail.outbox if "Manual intervention" in m.subject)
    assert order.number in body and "no vendor to contact" in body
    assert "Healing history" in body
