"""CELERY_QUEUE_TYPE=quorum against the real RabbitMQ (issue 17).

Runs in `make test`'s RabbitMQ phase (CELERY_BROKER_URL=amqp://...); skipped
on Redis. A vhost of its own: the phase's classic "healing" and "default"
queues live in the URL's vhost, and RabbitMQ refuses to redeclare a queue
with another type. The worker runs with CELERY_QUEUE_TYPE=quorum; a cycle is
sent to it as a run_cycle task, so beat's path (run_cycle on the default
queue, heal_order fanned out on the healing queue) runs on quorum queues.
A share of vendor calls fails, so countdown retries go through Celery's
native delayed delivery, the only way a quorum queue delays a message.
"""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

from healing.models import HealingAction, HealingCycle
from tests.faults.helpers import (
    assert_sound,
    figures,
    final_count,
    make_stuck_orders,
    size,
    snapshot_episodes,
    worker_log,
)
from tests.integration.workers import ROOT, Worker, wait_until
from tests.multihost.brokers import broker_is_rabbitmq, rabbitmqctl

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(240),
]

QUEUES = ("healing", "default")


@pytest.fixture
def quorum_vhost_url():
    """A throw-away vhost on the machine's node; its URL. Deleted afterwards."""
    url = settings.CELERY_BROKER_URL or ""
    if not broker_is_rabbitmq(url):
        pytest.skip("RabbitMQ phase only: CELERY_BROKER_URL is not amqp://")
    vhost = f"healing-quorum-{os.getpid()}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        parts = urlsplit(url)
        yield vhost, urlunsplit((parts.scheme, parts.netloc, f"/{vhost}", "", ""))
    finally:
        rabbitmqctl("delete_vhost", vhost)


def queue_types(vhost: str) -> dict[str, str]:
    out = rabbitmqctl("list_queues", "-p", vhost, "name", "type", "--no-table-headers", "-q")
    return dict(line.split() for line in out.splitlines() if line.strip())


def beat_sends_a_cycle(env: dict[str, str]) -> None:
    """What beat does each interval, from a process configured like the
    worker: run_cycle on the default queue (`celery call`, the app's routes)."""
    argv = [sys.executable, "-m", "celery", "-A", "config", "call", "healing.tasks.run_cycle"]
    subprocess.run(  # noqa: S603 - fixed argv
        [*argv, "--kwargs", '{"trigger": "BEAT"}'],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_a_cycle_heals_on_quorum_queues_with_retries_through_delayed_delivery(
    request, quorum_vhost_url
):
    vhost, url = quorum_vhost_url
    total = size(120, 1000)
    ids = make_stuck_orders(total)
    episodes = snapshot_episodes(ids)
    log = worker_log(request)
    env = {
        "CELERY_BROKER_URL": url,
        "CELERY_QUEUE_TYPE": "quorum",
        "VENDOR_GATEWAY_BACKEND": "simulated",
        "VENDOR_GATEWAY_SIM_LATENCY_MS": "10",
        "VENDOR_GATEWAY_SIM_FAILURE_RATE": "0.3",
        # Production-shaped retry waits (1-2 s, then 2-4 s): native delayed
        # delivery counts whole seconds, and Celery 5.7 rejects a countdown
        # under 1 s there ("countdown must be a positive number").
        "HEALING_TASK_BACKOFF_BASE": "2",
        "HEALING_TASK_BACKOFF_MAX": "4",
    }

    with Worker(pool="threads", concurrency=8, env=env, log_path=log) as worker:
        # The worker declared its queues and native delayed delivery's: all quorum.
        declared = queue_types(vhost)
        assert {name: declared.get(name) for name in QUEUES} == dict.fromkeys(QUEUES, "quorum")
        delayed = {kind for name, kind in declared.items() if name.startswith("celery_delayed_")}
        assert delayed == {"quorum"}, declared
        beat_sends_a_cycle(worker.env)
        assert wait_until(lambda: HealingCycle.objects.exists(), timeout=60)
        # Every order's healing final, not merely none active: the cycle's row
        # exists before its healings' rows are committed, and in that moment
        # no healing is active either.
        healed = wait_until(lambda: final_count(ids) == len(ids), timeout=150, interval=0.5)
        text = log.read_text(errors="replace")

    retried = text.count("healing retry scheduled")
    result = figures(
        "quorum-queues", order_ids=ids, episodes=episodes, faults=retried, log_paths=[log]
    )
    assert healed, HealingAction.objects.filter(order_id__in=ids).values_list("recovery_status")
    assert_sound(result)
    assert retried > 0, "no vendor call failed: delayed delivery was not exercised"
    assert HealingAction.objects.filter(order_id__in=ids).count() == total
    # Quorum queues refuse global QoS: the worker saw them and took per-consumer prefetch.
    assert "Global QoS is disabled" in text
    # Native delayed delivery routes through topic exchanges; on a direct one a
    # countdown retry would sit in the worker's memory until its ETA instead.
    assert "native delayed delivery do not support direct exchanges" not in text
    # Failed vendor calls were retried with a countdown, on the delayed-delivery
    # queues, and every retry was published.
    assert retried > 0, text[-3000:]
    assert "countdown must be a positive number" not in text
    print(f"  countdown retries through native delayed delivery: {retried}")
