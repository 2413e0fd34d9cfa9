"""A heal message lost in kombu's hand-off, made on purpose with a real worker.

While a worker is idle, kombu's Redis transport keeps a BRPOP waiting on the
heal queue's lists (one second at a time). The test freezes the worker's main
process (SIGSTOP) with that BRPOP outstanding and publishes a heal: Redis
serves the BRPOP, so the message leaves the list for the frozen process's
socket buffer and is recorded nowhere (not in the ``unacked`` hash, not in
the worker's liveness report). SIGKILL then loses it, as a kill in that
moment does in production. Its healing stays PENDING under the token it was
sent with and a ten-minute queue-wait lease; the sweeper must re-send it
once the worker is known dead (healing.sweeper.handoffs_lost).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection

from healing.dispatch import HEAL_ORDER, healings_dispatch
from healing.execution import healing_initiate
from healing.liveness import broker_tokens
from healing.models import FINAL_STATUSES, HealingAction
from healing.sweeper import leases_sweep
from orders.models import Order
from tests.faults.helpers import make_stuck_orders, worker_log
from tests.integration.workers import Worker, wait_until
from tests.multihost.brokers import broker_is_rabbitmq

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        broker_is_rabbitmq(os.environ.get("CELERY_BROKER_URL", "")),
        reason="kombu's Redis transport only: RabbitMQ requeues what a dead consumer held",
    ),
]

DEAD = 1.0  # seconds a silent worker is taken for dead (default 20)
ENV = {
    "HEALING_WORKER_BEAT_SECONDS": "0.25",
    "HEALING_WORKER_DEAD_SECONDS": str(DEAD),
    "HEALING_DISPATCH_LEASE_SECONDS": "600",
}
LISTS = ["healing", *(f"healing\x06\x16{step}" for step in (3, 6, 9))]


def _queued(client: redis.Redis) -> int:
    return sum(int(client.llen(name)) for name in LISTS)


def _swallowed(worker: Worker, client: redis.Redis, attempts: int = 5) -> HealingAction:
    """A healing whose message the frozen worker took off the list."""
    for _ in range(attempts):
        healing = healing_initiate(
            order=Order.objects.get(pk=make_stuck_orders(1)[0]), trigger="CLI"
        )
        assert worker.process is not None
        os.kill(worker.process.pid, signal.SIGSTOP)
        healings_dispatch([(healing.pk, str(healing.claim_token))])
        time.sleep(0.3)
        present = broker_tokens(queues=["healing"], task_name=HEAL_ORDER) or set()
        if _queued(client) == 0 and str(healing.claim_token) not in present:
            return healing
        # Its BRPOP had just timed out: the message waits in the list. Let
        # the worker heal it and try again.
        os.kill(worker.process.pid, signal.SIGCONT)
        assert wait_until(
            lambda h=healing: HealingAction.objects.get(pk=h.pk).recovery_status in FINAL_STATUSES,
            timeout=30,
        )
    raise AssertionError(f"no message swallowed in {attempts} attempts")


def _sweeper(stop: threading.Event) -> None:
    try:
        while not stop.wait(0.25):
            leases_sweep()
    finally:
        connection.close()


def test_a_message_the_killed_worker_took_off_the_queue_is_re_sent(request, settings, caplog):
    settings.HEALING_DISPATCH_LEASE_SECONDS = 600
    settings.HEALING_WORKER_DEAD_SECONDS = DEAD
    client = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    log = worker_log(request)
    worker = Worker(pool="prefork", concurrency=1, env=ENV, log_path=log, queues="healing")
    spare: Worker | None = None
    stop = threading.Event()
    sweeper = threading.Thread(target=_sweeper, args=(stop,), daemon=True)
    try:
        worker.start()
        time.sleep(1.5)  # idle: its BRPOP loop is running
        healing = _swallowed(worker, client)
        worker.kill()
        killed = time.monotonic()
        spare = Worker(pool="prefork", concurrency=1, env=ENV, log_path=log, queues="healing")
        spare.start()
        healing.refresh_from_db()
        assert healing.recovery_status == "PENDING"  # nothing else holds it
        caplog.set_level(logging.WARNING, logger="healing")
        sweeper.start()
        done = wait_until(
            lambda: HealingAction.objects.get(pk=healing.pk).recovery_status in FINAL_STATUSES,
            timeout=60,
        )
        took = time.monotonic() - killed
    finally:
        stop.set()
        if sweeper.is_alive():
            sweeper.join(10)
        worker.kill()
        if spare is not None:
            spare.stop()
    healing.refresh_from_db()
    print(f"  swallowed message re-sent and healed {took:.1f} s after the kill")
    assert done, f"healing {healing.pk} still {healing.recovery_status}"
    assert healing.recovery_status == "SUCCESS"
    rescues = [
        r for r in caplog.records if r.getMessage() == "lost workers' healings re-dispatched"
    ]
    assert [getattr(r, "dropped", None) for r in rescues] == [1]
