"""Issue 16, "Done when": SIGKILL pool children and a whole worker during a
cycle and measure, per healing that was in flight at a kill, the time from
the kill to its outcome: p95 <= 60 s, max <= 90 s at default settings.

Time scale. Every recovery interval is the default divided by SCALE = 12:
the 60 s heartbeat lease is 5 s, the 15 s sweep 1.25 s, the worker liveness
beat 5 s -> 0.42 s and its dead age 20 s -> 1.67 s. So the targets become
p95 <= 5 s and max <= 7.5 s. What is not scaled is the machine's own time (a
heal's run, the broker round trips, the queue wait of a re-send); it is inside
the measured figure with no allowance. The 600 s queue-wait lease stays 600 s:
it covers the backlog's drain time, which is the machine's too (scaled to 50 s,
2,000 orders outlast it and the sweeper re-sends queued heals: not a loss).

How the lost healings come back, none by a recovery cycle:
- a pool child killed: the worker's main process sees it die and re-sends
  its healing at once (healing.sweeper.HealRequest);
- a whole worker killed (its running heals and its prefetched messages,
  which Redis keeps unacknowledged for an hour): its liveness key expires and
  the sweeper re-sends what it last reported holding (healing.liveness);
- every re-send is urgent, so it overtakes the queue's backlog of first
  sends (healing.dispatch), and the lease sweeper stays the backstop.

Which healings count: at every kill, each heal message the worker held
(running or prefetched, delivered and not acknowledged), read from the
broker itself; the worker is the only one consuming heals until it is
killed. At a child kill that is the killed child's heal and the ones the
rest of the worker runs normally; at the whole-worker kill all are lost."""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import socket
import threading
from datetime import datetime

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from config.celery import app
from healing.cycle import healing_cycle_run
from healing.dispatch import HEAL_ORDER, heal_pairs
from healing.models import HealingAction
from healing.sweeper import leases_sweep
from tests.faults.helpers import (
    active_count,
    assert_sound,
    figures,
    make_stuck_orders,
    size,
    snapshot_episodes,
    stuck_report,
    wait_for_progress,
    worker_log,
)
from tests.integration.workers import FAST_ENV, Worker, wait_until
from tests.multihost.brokers import broker_is_rabbitmq

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(400),
]

SCALE = 12
LEASE = 60 / SCALE
SWEEP = 15 / SCALE
P95_TARGET, MAX_TARGET = 60 / SCALE, 90 / SCALE
SLOW_GATEWAY = {"VENDOR_GATEWAY_BACKEND": "simulated", "VENDOR_GATEWAY_SIM_LATENCY_MS": "15"}
DISPATCH_LEASE = 600  # a queued heal's lease covers the backlog (not scaled)
ENV = {
    **SLOW_GATEWAY,
    "HEALING_LEASE_RENEW_SECONDS": str(LEASE / 3),
    "HEALING_DISPATCH_LEASE_SECONDS": str(DISPATCH_LEASE),
    "HEALING_WORKER_BEAT_SECONDS": str(5 / SCALE),
    "HEALING_WORKER_DEAD_SECONDS": str(20 / SCALE),
}


def _sweeper(stop: threading.Event) -> None:
    """Beat's lease sweeper, at the scaled interval."""
    try:
        while not stop.wait(SWEEP):
            leases_sweep()
    finally:
        connection.close()


def _held_by_the_broker() -> list[int]:
    """Healing ids of every heal message delivered and not yet acknowledged
    (kombu's Redis transport keeps them in the ``unacked`` hash)."""
    ids: list[int] = []
    for raw in redis.Redis.from_url(django_settings.CELERY_BROKER_URL).hvals("unacked"):
        message = json.loads(raw)[0]
        if message["headers"].get("task") != HEAL_ORDER:
            continue
        body = json.loads(base64.b64decode(message["body"]))
        ids.extend(healing_id for healing_id, _ in heal_pairs(body[0], body[1]))
    return ids


def _nodename(worker: Worker) -> str:
    return f"test-{os.getpid()}-{id(worker)}@{socket.gethostname()}"


def _consume_heals(worker: Worker) -> None:
    """Have ``worker`` consume the heal queue; it must say so (a broadcast
    it missed would leave the queue unconsumed and look like lost heals)."""
    name = _nodename(worker)
    for _ in range(3):
        replies = app.control.add_consumer("healing", destination=[name], reply=True, timeout=5)
        if any(name in reply for reply in replies or ()):
            return
    raise AssertionError(f"{name} never answered add_consumer")


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)]


@pytest.mark.skipif(
    broker_is_rabbitmq(os.environ.get("CELERY_BROKER_URL", "")),
    reason="reads kombu's Redis bookkeeping of unacknowledged messages",
)
def test_recovery_time_after_sigkill_of_children_and_a_whole_worker(request, settings):
    assert int(FAST_ENV["HEALING_LEASE_SECONDS"]) == LEASE
    settings.HEALING_LEASE_SECONDS = LEASE
    settings.HEALING_DISPATCH_LEASE_SECONDS = DISPATCH_LEASE
    settings.HEALING_WORKER_DEAD_SECONDS = float(ENV["HEALING_WORKER_DEAD_SECONDS"])
    total, child_kills = size(300, 2000), size(3, 8)
    ids = make_stuck_orders(total)
    episodes = snapshot_episodes(ids)
    log = worker_log(request)
    kills: list[tuple[datetime, list[int]]] = []
    stop = threading.Event()
    sweeper = threading.Thread(target=_sweeper, args=(stop,), daemon=True)
    sweeper.start()

    # A consumes heals; B stands by on the default queue until A is killed,
    # so the broker's unacknowledged heal messages at the kill are all A's.
    spare = Worker(pool="prefork", concurrency=2, env=ENV, log_path=log, queues="default")
    worker = Worker(pool="prefork", concurrency=2, env=ENV, log_path=log).start()
    spare.start()
    try:
        healing_cycle_run(trigger="BEAT")
        for k in range(child_kills):
            wait_for_progress(ids, total * (k + 1) // (child_kills + 3))
            wait_until(worker.children, timeout=15)
            kills.append((timezone.now(), _held_by_the_broker()))
            os.kill(random.choice(worker.children()), signal.SIGKILL)
        wait_for_progress(ids, total * (child_kills + 1) // (child_kills + 3))
        killed_at = timezone.now()
        worker.kill()  # the whole worker: running heals and prefetched messages
        kills.append((killed_at, _held_by_the_broker()))
        _consume_heals(spare)
        settled = wait_until(lambda: active_count(ids) == 0, timeout=240, interval=0.2)
        assert settled, stuck_report(ids)
    finally:
        stop.set()
        sweeper.join(10)
        worker.stop()
        spare.stop()

    times, per_kill = [], []
    for at, healing_ids in kills:
        done = HealingAction.objects.filter(pk__in=healing_ids, completed_at__gt=at)
        per_kill.append(
            [(c - at).total_seconds() for c in done.values_list("completed_at", flat=True)]
        )
        times += per_kill[-1]
    whole = per_kill[-1]
    result = figures(
        "recovery-time", order_ids=ids, episodes=episodes, faults=len(kills), log_paths=[log]
    )
    p95, worst = _percentile(times, 0.95), max(times)
    print(
        f"  crash->outcome over {len(times)} in-flight healings ({len(whole)} held by the "
        f"killed worker): p95={p95:.2f}s max={worst:.2f}s; at default settings (x{SCALE}) "
        f"p95 {p95 * SCALE:.0f}s, max {worst * SCALE:.0f}s (targets 60 s / 90 s)"
    )
    print(
        "  per kill (count, slowest): "
        + ", ".join(f"{len(k)}/{max(k, default=0):.2f}s" for k in per_kill)
    )
    assert_sound(result)
    assert whole, "the killed worker held no heal message"
    assert p95 <= P95_TARGET
    assert worst <= MAX_TARGET
