"""RabbitMQ as the broker: the machine's node stopped and started mid-cycle.

Runs in `make test`'s RabbitMQ phase (CELERY_BROKER_URL=amqp://...); skipped on
Redis, where tests/faults covers a broker restart with nothing on disk.
The queues are durable and the messages persistent: what was queued survives
`rabbitmqctl stop_app`; what a worker held unacknowledged is requeued; a
delivery that lands twice finds its claim taken (STALE). Lost 0, double-healed 0.
"""

from __future__ import annotations

import time

import pytest
from django.conf import settings

from healing.cycle import healing_cycle_run
from tests.faults.helpers import (
    assert_sound,
    figures,
    make_stuck_orders,
    recover,
    size,
    snapshot_episodes,
    wait_for_progress,
    worker_log,
)
from tests.integration.workers import Worker, wait_until
from tests.multihost.brokers import broker_is_rabbitmq, rabbitmqctl

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(300),
]

SLOW_GATEWAY = {"VENDOR_GATEWAY_BACKEND": "simulated", "VENDOR_GATEWAY_SIM_LATENCY_MS": "15"}


@pytest.fixture
def rabbitmq_node():
    if not broker_is_rabbitmq(settings.CELERY_BROKER_URL or ""):
        pytest.skip("RabbitMQ phase only: CELERY_BROKER_URL is not amqp://")
    yield
    # Whatever happened, leave the machine's node running.
    rabbitmqctl("start_app")
    rabbitmqctl("await_startup")


def test_rabbitmq_node_stopped_and_started_mid_cycle(request, rabbitmq_node):
    total, restarts = size(200, 2000), size(1, 3)
    ids = make_stuck_orders(total)
    episodes = snapshot_episodes(ids)
    log = worker_log(request)
    crashed = 0

    worker = Worker(pool="prefork", concurrency=2, env=SLOW_GATEWAY, log_path=log).start()
    try:
        healing_cycle_run(trigger="BEAT")
        for k in range(restarts):
            wait_for_progress(ids, total * (k + 1) // (restarts + 3))
            rabbitmqctl("stop_app")
            time.sleep(2)
            rabbitmqctl("start_app")
            rabbitmqctl("await_startup")
            # A worker that gives up on its connection exits; the deployment's
            # supervisor restarts it (counted, like the Redis scenario does).
            if wait_until(lambda: worker.process.poll() is not None, timeout=3):
                crashed += 1
                worker.stop()
                worker = Worker(pool="prefork", concurrency=2, env=SLOW_GATEWAY, log_path=log)
                worker.start()
        redispatched = recover(ids)
    finally:
        worker.stop()

    result = figures(
        "rabbitmq-restart-mid-cycle",
        order_ids=ids,
        episodes=episodes,
        faults=restarts,
        log_paths=[log],
    )
    print(f"  healings re-dispatched through leases: {redispatched}; worker exits: {crashed}")
    assert_sound(result)
