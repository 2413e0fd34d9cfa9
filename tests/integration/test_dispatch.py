"""A cycle's fan-out on the real broker (issue 15 item 4): batched publishing
loses and repeats nothing, whatever the batch size and the number of threads."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings

from config.celery import app
from healing.dispatch import heal_pairs, healings_dispatch
from tests.multihost.brokers import broker_flush

pytestmark = pytest.mark.integration


def _drain_healing_queue() -> list[list[tuple[int, str]]]:
    """Every heal task waiting in the healing queue, as the (healing id,
    token) pairs each carries."""
    found: list[list[tuple[int, str]]] = []
    with app.connection_for_write() as conn:
        queue = app.amqp.queues["healing"](conn.default_channel)
        while (message := queue.get(no_ack=True)) is not None:
            args, kwargs, _embed = message.decode()
            found.append(heal_pairs(args, kwargs))
    return found


@pytest.mark.parametrize(
    ("batch", "threads", "per_task"), [(1, 1, 1), (100, 3, 10), (500, 8, 10), (500, 8, 1)]
)
def test_every_task_of_a_cycle_reaches_the_queue_exactly_once(settings, batch, threads, per_task):
    settings.HEALING_DISPATCH_BATCH = batch
    settings.HEALING_DISPATCH_THREADS = threads
    settings.HEALING_TASK_BATCH = per_task
    broker_flush(django_settings.CELERY_BROKER_URL)
    pairs = [(healing_id, f"token-{healing_id}") for healing_id in range(1, 1302)]

    healings_dispatch(pairs)

    tasks = _drain_healing_queue()
    assert sorted(pair for carried in tasks for pair in carried) == pairs
    assert max(len(carried) for carried in tasks) == per_task
    assert len(tasks) <= -(-len(pairs) // per_task) + threads  # full batches but one a share


@pytest.mark.django_db
def test_a_cycle_sends_a_lost_healing_ahead_of_its_first_sends(django_capture_on_commit_callbacks):
    """Issue 16: the cycle's re-dispatch of an expired lease goes out urgent
    (ahead of any backlog), its new healings at the normal priority."""
    from datetime import timedelta

    from django.utils import timezone

    from healing.cycle import healing_cycle_run
    from healing.dispatch import heal_priority
    from tests.factories import HealingActionFactory, OrderFactory, VendorFactory

    VendorFactory.create_batch(2, capacity=100)
    fresh = OrderFactory(status="CONFIRMED", stuck_minutes=61)
    lost = HealingActionFactory(
        order=OrderFactory(status="CONFIRMED", stuck_minutes=61),
        recovery_status="IN_PROGRESS",
        lease_expires_at=timezone.now() - timedelta(seconds=5),
    )
    broker_flush(django_settings.CELERY_BROKER_URL)

    with django_capture_on_commit_callbacks(execute=True):
        result = healing_cycle_run(trigger="CLI")

    priorities = {}
    with app.connection_for_write() as conn:
        queue = app.amqp.queues["healing"](conn.default_channel)
        while (message := queue.get(no_ack=True)) is not None:
            args, _kwargs, _embed = message.decode()
            priorities[args[0]] = message.properties.get("priority")
    new_id = result.cycle_id and fresh.healing_actions.get().pk
    assert (result.dispatched, result.redispatched) == (2, 1)
    # A message sent with no priority reads back as 0 on RabbitMQ.
    assert priorities == {
        new_id: heal_priority(urgent=False) or 0,
        lost.pk: heal_priority(urgent=True),
    }


def test_on_rabbitmq_an_urgent_resend_overtakes_a_backlog_of_first_sends():
    """Issue 16: with CELERY_QUEUE_MAX_PRIORITY the classic queue honours the
    priority healing.dispatch gives a re-send of a lost healing."""
    import uuid

    from kombu import Exchange, Queue

    from healing.dispatch import heal_priority
    from tests.multihost.brokers import queue_declarations

    url = str(django_settings.CELERY_BROKER_URL)
    if not url.startswith("amqp"):
        pytest.skip("message priorities on a classic queue are RabbitMQ's (Redis: test above)")
    arguments = queue_declarations(CELERY_QUEUE_MAX_PRIORITY="10")["healing"][1]
    name = f"test-priority-{uuid.uuid4().hex[:8]}"
    queue = Queue(name, Exchange(name), routing_key=name, queue_arguments=arguments)
    with app.connection_for_write() as conn:
        bound = queue(conn.default_channel)
        bound.declare()
        try:
            producer = conn.Producer()
            for index in range(20):
                producer.publish(
                    {"n": index},
                    exchange=queue.exchange,
                    routing_key=name,
                    priority=heal_priority(urgent=False, broker_url=url),
                )
            producer.publish(
                {"n": "urgent"},
                exchange=queue.exchange,
                routing_key=name,
                priority=heal_priority(urgent=True, broker_url=url),
            )
            first = bound.get(no_ack=True)
            assert first is not None and first.payload == {"n": "urgent"}
        finally:
            bound.delete()
