"""Issue 16, recovery time: a healing whose holder is known dead is re-sent at
once (healings_rescue), only when the claim is the dead holder's; re-sends
are urgent on every broker's own priority scale; workers' liveness reports."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from healing import liveness
from healing.dispatch import heal_priority
from healing.execution import healing_execute, healing_initiate
from healing.liveness import worker_held, workers_alive_held, workers_forget, workers_lost
from healing.models import HealingAction
from healing.sweeper import healings_rescue
from tests.factories import OrderFactory

pytestmark = [pytest.mark.django_db(transaction=True)]


def dispatched() -> HealingAction:
    order = OrderFactory(status="CONFIRMED", stuck_minutes=61)
    return healing_initiate(order=order, trigger="CLI")


def rescue(*held: tuple[int, str, float | None], window: float | None = None) -> list:
    with transaction.atomic():
        return healings_rescue(list(held), now=timezone.now(), window=window)


def test_a_healing_its_dead_holder_never_claimed_gets_a_new_token_and_the_old_one_is_void():
    healing = dispatched()
    old = str(healing.claim_token)

    ((healing_id, token),) = rescue((healing.pk, old, None))

    healing.refresh_from_db()
    assert (healing_id, str(healing.claim_token)) == (healing.pk, token) and token != old
    assert healing.recovery_status == "PENDING"
    assert healing_execute(healing_id=healing.pk, token=old).status == "STALE"
    assert rescue((healing.pk, old, None)) == []  # once


def test_a_claim_made_after_the_dead_holder_started_is_its_own_and_is_taken_back():
    healing = dispatched()
    started = time.time()
    HealingAction.objects.filter(pk=healing.pk).update(
        recovery_status="IN_PROGRESS", claim_token=uuid.uuid4(), updated_at=timezone.now()
    )

    assert len(rescue((healing.pk, str(healing.claim_token), started))) == 1
    healing.refresh_from_db()
    assert healing.recovery_status == "PENDING"


def test_a_claim_older_than_the_holder_or_outside_the_window_is_someone_elses():
    healing = dispatched()
    claimed_at = timezone.now() - timedelta(seconds=30)
    HealingAction.objects.filter(pk=healing.pk).update(
        recovery_status="IN_PROGRESS", claim_token=uuid.uuid4(), updated_at=claimed_at
    )
    original = str(healing.claim_token)

    # The holder started after the claim: not its claim.
    assert rescue((healing.pk, original, time.time())) == []
    # The claim came later than the window after the holder's start.
    assert rescue((healing.pk, original, claimed_at.timestamp() - 60), window=20) == []
    assert rescue((healing.pk, original, claimed_at.timestamp() - 10), window=20) != []


def test_a_finished_healing_is_never_rescued():
    healing = dispatched()
    HealingAction.objects.filter(pk=healing.pk).update(recovery_status="SUCCESS")
    assert rescue((healing.pk, str(healing.claim_token), time.time() - 5)) == []


@pytest.mark.parametrize(
    ("url", "normal", "urgent"),
    [
        # kombu's Redis lists are consumed lowest step first: 0 is the highest.
        ("redis://127.0.0.1:6379/0", 6, 0),
        ("rediss://cache.example:6380/1", 6, 0),
        # AMQP: higher is higher; a message with no priority counts as 0.
        ("amqp://guest@127.0.0.1:5672//", None, 9),
        ("memory://localhost/", None, None),
    ],
)
def test_an_urgent_re_send_outranks_a_first_send_on_the_brokers_own_scale(url, normal, urgent):
    assert heal_priority(urgent=False, broker_url=url) == normal
    assert heal_priority(urgent=True, broker_url=url) == urgent


class _Request:
    def __init__(
        self, name: str, args: tuple, time_start: float | None = None, kwargs: dict | None = None
    ) -> None:
        self.name, self.args, self.time_start = name, args, time_start
        self.kwargs = kwargs or {}


def test_a_worker_reports_only_its_heal_tasks_and_every_healing_of_a_batch():
    requests = [
        _Request("healing.tasks.heal_order", (7, "t7"), 100.0),
        _Request("healing.tasks.heal_order", (8, "t8")),
        _Request("healing.tasks.run_cycle", ("BEAT",)),
        _Request("healing.tasks.heal_order", (9, "t9"), 101.0, {"more": [[10, "t10"]]}),
    ]
    assert worker_held(requests, task_name="healing.tasks.heal_order") == [
        (7, "t7", 100.0),
        (8, "t8", None),
        (9, "t9", 101.0),
        (10, "t10", 101.0),
    ]


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")
def test_a_worker_whose_liveness_key_expired_is_lost_and_a_live_one_is_not():
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(liveness.WORKERS_KEY)
    client.hset(liveness.WORKERS_KEY, "alive:1", json.dumps([[1, "a", None]]))
    client.set(liveness.ALIVE_KEY + "alive:1", 1, px=60_000)
    client.hset(liveness.WORKERS_KEY, "dead:2", json.dumps([[2, "b", 12.5]]))

    assert workers_lost() == [("dead:2", [(2, "b", 12.5)])]
    assert workers_alive_held() == {(1, "a")}
    workers_forget(["dead:2"])
    assert workers_lost() == []
    client.delete(liveness.WORKERS_KEY, liveness.ALIVE_KEY + "alive:1")
