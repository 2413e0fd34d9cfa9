"""Two beats on two hosts, one of them partitioned for a while.

The Procfile's beat runs on the beat host and a second one on the web host,
both scheduling run_cycle every second; the Procfile's worker runs on both
worker hosts. The beat host's cable is cut for two leases and restored. The
cycle lock is a row in PostgreSQL: however many beats send run_cycle, no two
cycles ever overlap, and every stuck order is healed exactly once.
"""

from __future__ import annotations

import time

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from healing.models import HealingCycle
from tests.faults.helpers import (
    LEASE_SECONDS,
    CountingDispatch,
    assert_sound,
    figures,
    make_stuck_orders,
    recover,
    snapshot_episodes,
    wait_for_progress,
)
from tests.multihost.conftest import procfile_argv

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(240),
]

ORDERS = 200
SLOW_GATEWAY = {"VENDOR_GATEWAY_BACKEND": "simulated", "VENDOR_GATEWAY_SIM_LATENCY_MS": "20"}


def overlapping_cycles() -> list[tuple[int, int]]:
    cycles = list(
        HealingCycle.objects.exclude(finished_at=None)
        .order_by("started_at")
        .values_list("pk", "started_at", "finished_at")
    )
    overlaps = []
    for index, (first, _, first_end) in enumerate(cycles):
        for second, second_start, _ in cycles[index + 1 :]:
            if first_end is not None and second_start < first_end:
                overlaps.append((first, second))
    return overlaps


def test_two_beats_on_two_hosts_never_run_two_cycles_at_once(cluster):
    every = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name="multihost cycle",
        task="healing.tasks.run_cycle",
        interval=every,
        kwargs='{"trigger": "BEAT"}',
    )
    ids = make_stuck_orders(ORDERS)
    episodes = snapshot_episodes(ids)
    logs = [cluster.worker(name, env=SLOW_GATEWAY) for name in ("worker1", "worker2")]
    for host in ("beat", "web"):
        cluster.hosts[host].spawn(
            procfile_argv("beat"),
            env=cluster.env,
            log_path=cluster.log_dir / f"{host}-beat.log",
        )

    wait_for_progress(ids, ORDERS // 4, timeout=90)
    cluster.hosts["beat"].link_down()
    time.sleep(LEASE_SECONDS * 2)  # the web host's beat keeps scheduling
    cluster.hosts["beat"].link_up()
    wait_for_progress(ids, ORDERS, timeout=90)
    PeriodicTask.objects.filter(name="multihost cycle").delete()
    redispatched = recover(ids, dispatch=CountingDispatch(broker_url=cluster.network.broker_url))

    cycles = HealingCycle.objects.count()
    result = figures(
        "multihost-two-beats", order_ids=ids, episodes=episodes, faults=1, log_paths=logs
    )
    print(f"  cycles run: {cycles}; re-dispatched at the end: {redispatched}")
    assert cycles >= 2, "the beats did not schedule"
    assert overlapping_cycles() == []
    assert_sound(result)
