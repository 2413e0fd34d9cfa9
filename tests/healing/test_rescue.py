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

from config.celery import app
from healing import liveness
from healing.dispatch import HEAL_ORDER, heal_priority
from healing.execution import healing_execute, healing_initiate
from healing.liveness import worker_held, workers_alive_held, workers_forget, workers_lost
from healing.models import HealingAction
from healing.sweeper import handoffs_lost, healings_rescue, workers_lost_rescue
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


@pytest.fixture
def redis_broker(settings):
    """The heal queue on a real Redis broker (REDIS_URL's database), emptied
    before and after; the app itself still runs tasks in-process."""
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL")
    settings.CELERY_BROKER_URL = settings.REDIS_URL
    client = redis.Redis.from_url(settings.REDIS_URL)
    steps = settings.CELERY_BROKER_TRANSPORT_OPTIONS["priority_steps"]
    keys = ["healing", *(f"healing\x06\x16{step}" for step in steps if step)]
    keys += ["unacked", "unacked_index", "unacked_mutex", liveness.WORKERS_KEY]

    def clean() -> None:
        client.delete(*keys, *client.keys(liveness.ALIVE_KEY + "*"))

    clean()
    with app.connection_for_write(settings.REDIS_URL) as conn:
        conn.transport_options.update(settings.CELERY_BROKER_TRANSPORT_OPTIONS)
        app.amqp.queues["healing"].bind(conn.default_channel).declare()
        yield conn, client
    clean()


@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")  # it publishes
def test_a_worker_dies_with_a_message_it_took_off_the_queue_and_never_recorded(redis_broker):
    """kombu's Redis transport pops a delivery (BRPOP) and records it as
    unacknowledged a moment later: a worker SIGKILLed in between leaves a
    PENDING healing with no message anywhere, which waited out its ten-minute
    queue-wait lease (seen in CI as test_recovery_time's 240 s timeout)."""
    conn, client = redis_broker
    held, dropped, queued = dispatched(), dispatched(), dispatched()
    producer = conn.Producer()
    for healing in (held, dropped, queued):
        app.send_task(HEAL_ORDER, args=(healing.pk, str(healing.claim_token)), producer=producer)
    # A live worker holds the first (delivered, not acknowledged, reported).
    assert conn.default_channel.basic_get("healing", no_ack=False) is not None
    client.hset(liveness.WORKERS_KEY, "live:1", json.dumps([[held.pk, str(held.claim_token), 1]]))
    client.set(liveness.ALIVE_KEY + "live:1", 1, px=60_000)
    # The dying one took the second off the list and died before recording it.
    assert client.rpop("healing") is not None
    later = timezone.now() + timedelta(seconds=settings.HEALING_WORKER_DEAD_SECONDS + 1)
    sent: list = []

    # Nobody died yet: nothing is read, nothing is re-sent.
    assert workers_lost_rescue(now=later, dispatch=sent.extend) == 0
    client.hset(liveness.WORKERS_KEY, "dead:2", json.dumps([]))
    assert len(handoffs_lost(now=later, min_age=settings.HEALING_WORKER_DEAD_SECONDS)) == 1
    assert workers_lost_rescue(now=later, dispatch=sent.extend) == 1

    ((healing_id, token),) = sent
    assert healing_id == dropped.pk and token != str(dropped.claim_token)
    for healing in (held, queued):
        before = str(healing.claim_token)
        healing.refresh_from_db()
        assert str(healing.claim_token) == before
    assert workers_lost() == []  # the dead worker is forgotten: read once


def test_a_queued_healing_dispatched_a_moment_ago_or_waiting_for_its_retry_is_not_missing(
    redis_broker,
):
    fresh, waiting = dispatched(), dispatched()
    HealingAction.objects.filter(pk=waiting.pk).update(next_attempt_at=timezone.now())
    dead_age = settings.HEALING_WORKER_DEAD_SECONDS
    now = timezone.now()
    assert handoffs_lost(now=now, min_age=dead_age) == []
    later = now + timedelta(seconds=dead_age + 1)
    assert handoffs_lost(now=later, min_age=dead_age) == [(fresh.pk, str(fresh.claim_token), None)]


def test_no_broker_to_read_means_nothing_is_missing(settings):
    settings.CELERY_BROKER_URL = "amqp://guest@127.0.0.1:5672//"
    dispatched()
    later = timezone.now() + timedelta(hours=1)
    assert handoffs_lost(now=later, min_age=1) == []


def test_a_broker_that_cannot_be_read_leaves_the_lost_messages_to_their_leases(settings, caplog):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    dispatched()
    later = timezone.now() + timedelta(hours=1)
    assert handoffs_lost(now=later, min_age=1) == []
    assert "heal queue not read for lost messages" in caplog.text


def test_more_missing_than_a_sweep_batch_is_a_broker_that_lost_its_data(
    redis_broker, settings, caplog
):
    settings.HEALING_SWEEP_BATCH = 2
    oldest, older, newest = dispatched(), dispatched(), dispatched()
    later = timezone.now() + timedelta(seconds=settings.HEALING_WORKER_DEAD_SECONDS + 1)
    # No message was ever published: all three are missing, the oldest two re-sent.
    found = handoffs_lost(now=later, min_age=settings.HEALING_WORKER_DEAD_SECONDS)
    assert [healing_id for healing_id, _, _ in found] == [oldest.pk, older.pk]
    assert "queued healings missing from the broker left to their leases" in caplog.text
    assert newest.pk not in {healing_id for healing_id, _, _ in found}
