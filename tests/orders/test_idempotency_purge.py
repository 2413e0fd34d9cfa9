"""Expired Idempotency-Keys are purged by beat, hourly (they used to pile up)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery import current_app
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from config.beat import beat_schedule_sync
from orders.models import IdempotencyKey
from orders.tasks import idempotency_keys_purge

pytestmark = pytest.mark.django_db

JOB = "idempotency keys purge"


def test_the_purge_is_on_the_beat_schedule_after_the_sync():
    PeriodicTask.objects.filter(name=JOB).delete()
    assert beat_schedule_sync()[JOB] == "created"
    row = PeriodicTask.objects.select_related("interval").get(name=JOB)
    assert row.task == "orders.tasks.idempotency_keys_purge" and row.enabled
    assert (row.interval.every, row.interval.period) == (1, "hours")
    # Beat sends it by name: the name must be a registered task.
    assert row.task in current_app.tasks


def _key(key: str, expires_in: timedelta) -> IdempotencyKey:
    now = timezone.now()
    return IdempotencyKey.objects.create(
        owner="user:1",
        key=key,
        method="POST",
        path="/api/v1/orders",
        request_hash="0" * 64,
        response_status=201,
        response_body="{}",
        created_at=now - timedelta(hours=25),
        expires_at=now + expires_in,
    )


def test_the_task_purges_only_expired_keys():
    _key("old", -timedelta(hours=1))
    _key("just-expired", -timedelta(seconds=1))
    _key("live", timedelta(hours=1))
    _key("fresh", timedelta(hours=24))

    # Eager in tests (no broker): the same call beat's message makes.
    deleted = idempotency_keys_purge.delay().get()

    assert deleted == 2
    assert sorted(IdempotencyKey.objects.values_list("key", flat=True)) == ["fresh", "live"]
    assert idempotency_keys_purge.delay().get() == 0  # nothing left to purge
