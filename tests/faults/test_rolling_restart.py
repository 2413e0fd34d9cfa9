"""Issue 16 item 4: a rolling restart of the workers during a cycle. Each of
two workers in turn gets SIGTERM (Celery's warm shutdown: the heals in flight
finish, the prefetched messages go back to the broker), exits, and a new one
starts. Nothing is lost, nothing is healed twice, and nothing waits for a
lease: the sweeper (running as beat would, at the fault suite's short leases)
re-dispatches no healing, and every healing ends within one lease of the last
restart.

SIGTERM goes where the shipped units send it: to the worker's main process
only (systemd KillMode=mixed; deploy/supervisord.conf stopasgroup=false)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from django.db import connection

from healing.cycle import healing_cycle_run
from healing.models import HealingAction
from healing.sweeper import leases_sweep
from tests.faults.helpers import (
    LEASE_SECONDS,
    active_count,
    assert_sound,
    figures,
    make_stuck_orders,
    size,
    snapshot_episodes,
    wait_for_progress,
    worker_log,
)
from tests.integration.workers import Worker, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(300),
]

# 40 ms a vendor call: heals are in flight when SIGTERM arrives. The queue-wait
# lease is default-shaped (600 s / 12): a heal waiting out a restart in the
# queue is not lost, and must not be re-sent.
DISPATCH_LEASE = 50
ENV = {
    "VENDOR_GATEWAY_BACKEND": "simulated",
    "VENDOR_GATEWAY_SIM_LATENCY_MS": "40",
    "HEALING_DISPATCH_LEASE_SECONDS": str(DISPATCH_LEASE),
}
SWEEP = 15 / 12


def _sweeper(stop: threading.Event, swept: list[int]) -> None:
    try:
        while not stop.wait(SWEEP):
            result = leases_sweep()
            swept.append(result.redispatched + result.rescued)
    finally:
        connection.close()


def _warm_stop(worker: Worker, timeout: float = 60) -> int:
    """SIGTERM to the main process and wait for it to exit; its exit code."""
    assert worker.process is not None
    os.kill(worker.process.pid, signal.SIGTERM)
    return worker.process.wait(timeout=timeout)


def test_a_rolling_restart_during_a_cycle_loses_nothing_and_doubles_nothing(request, settings):
    settings.HEALING_DISPATCH_LEASE_SECONDS = DISPATCH_LEASE
    total = size(300, 2000)
    ids = make_stuck_orders(total)
    episodes = snapshot_episodes(ids)
    log = worker_log(request)
    stop, swept = threading.Event(), []
    sweeper = threading.Thread(target=_sweeper, args=(stop, swept), daemon=True)
    sweeper.start()

    workers = [Worker(pool="prefork", concurrency=2, env=ENV, log_path=log).start() for _ in "ab"]
    exits, in_flight = [], 0
    try:
        healing_cycle_run(trigger="BEAT")
        for index in range(len(workers)):
            wait_for_progress(ids, total * (index + 1) // 4, timeout=60)
            in_flight += HealingAction.objects.filter(recovery_status="IN_PROGRESS").count()
            exits.append(_warm_stop(workers[index]))
            workers[index].log.close()
            workers[index] = Worker(pool="prefork", concurrency=2, env=ENV, log_path=log).start()
        restarted = time.monotonic()
        assert wait_until(lambda: active_count(ids) == 0, timeout=120, interval=0.2)
        settled = time.monotonic() - restarted
    finally:
        stop.set()
        sweeper.join(10)
        for worker in workers:
            worker.stop()

    result = figures(
        "rolling-restart", order_ids=ids, episodes=episodes, faults=len(exits), log_paths=[log]
    )
    text = log.read_text(errors="replace")
    print(
        f"  exits {exits}; IN_PROGRESS at the SIGTERMs {in_flight}; warm shutdowns logged "
        f"{text.count('Warm shutdown')}; re-dispatched by the sweeper {sum(swept)}; "
        f"all final {settled:.1f}s after the last restart"
    )
    assert exits == [0, 0]  # a clean warm shutdown each time
    assert_sound(result)
    assert sum(swept) == 0  # nothing was lost: no lease ran out, no worker died
    assert "WorkerLostError" not in text  # no heal was cut short
    assert settled <= LEASE_SECONDS + 60  # the backlog drains; nothing waits on a lease
