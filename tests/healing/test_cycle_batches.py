"""A cycle writes its healings batch by batch (issue 15 item 5): the same
rows, tasks, guard and silences as one batch, whatever the batch size."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from healing.cycle import healing_cycle_run
from healing.models import HealingAction
from healing.silences import SilenceSpec, silence_create
from tests.factories import OrderFactory, UserFactory, VendorFactory

pytestmark = pytest.mark.django_db


def _stuck_marketplace():
    VendorFactory.create_batch(3, capacity=1000)
    return [
        *(OrderFactory(status="PENDING", stuck_minutes=31 + n) for n in range(4)),
        *(OrderFactory(status="CONFIRMED", stuck_minutes=61 + n) for n in range(3)),
    ]


@pytest.mark.parametrize("batch", [1, 2, 5000])
def test_every_stuck_order_gets_one_healing_and_one_task_whatever_the_batch(
    settings, batch, django_capture_on_commit_callbacks
):
    settings.HEALING_CYCLE_BATCH = batch
    stuck = _stuck_marketplace()
    OrderFactory.create_batch(20, status="PROCESSING", stuck_minutes=1)  # healthy
    sent: list[tuple[int, str]] = []

    with django_capture_on_commit_callbacks(execute=True):
        result = healing_cycle_run(trigger="CLI", dispatch=sent.extend)

    rows = HealingAction.objects.filter(cycle_id=result.cycle_id)
    assert sorted(rows.values_list("order_id", flat=True)) == sorted(o.pk for o in stuck)
    assert (result.detected, result.dispatched) == (7, 7)
    assert sorted(sent) == sorted((r.pk, str(r.claim_token)) for r in rows)
    assert result.by_action == {"REASSIGN_VENDOR": 4, "RETRY_WORKFLOW": 3}


@pytest.mark.parametrize("batch", [1, 3])
def test_a_tripped_guard_holds_rows_of_every_batch_and_outranks_a_silence(
    settings, batch, django_capture_on_commit_callbacks
):
    settings.HEALING_CYCLE_BATCH = batch
    settings.HEALING_GUARD_MIN_STUCK = 4
    settings.HEALING_GUARD_MAX_SHARE = 0.5
    stuck = _stuck_marketplace()
    silenced_vendor = stuck[0].vendor
    now = timezone.now()
    silence_create(
        spec=SilenceSpec(
            starts_at=now - timedelta(minutes=5),
            ends_at=now + timedelta(hours=1),
            comment="maintenance",
            vendor_id=silenced_vendor.pk,
        ),
        owner=UserFactory(),
    )
    sent: list[tuple[int, str]] = []

    with django_capture_on_commit_callbacks(execute=True):
        result = healing_cycle_run(trigger="CLI", dispatch=sent.extend)

    assert result.guard_tripped
    rows = HealingAction.objects.filter(cycle_id=result.cycle_id)
    reassign = rows.filter(recovery_action="REASSIGN_VENDOR")
    assert set(reassign.values_list("recovery_status", "skip_reason", "silence_id")) == {
        ("SKIPPED", "GUARD", None)
    }
    assert not reassign.exclude(claim_token=None).exists()
    retries = rows.filter(recovery_action="RETRY_WORKFLOW").exclude(order__vendor=silenced_vendor)
    assert sorted(sent) == sorted((r.pk, str(r.claim_token)) for r in retries)
