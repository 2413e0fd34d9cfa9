"""Across machines: worker hosts in network namespaces lose their link or die.

Two worker hosts run the Procfile's worker and reach PostgreSQL and the
broker over their veth cables; the test process plays beat (its cycles and
the lease sweep). Everywhere: lost 0, double-healed 0, and recovery within
the lease bound. CI runs a few hundred orders; MULTIHOST_ORDERS sets more.
"""

from __future__ import annotations

import os
import time

import pytest

from healing.cycle import healing_cycle_run
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

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(300),
]

ORDERS = int(os.environ.get("MULTIHOST_ORDERS", "300"))
# Lease (5 s) + idle-transaction timeout (3 s) + the last heals, on a busy machine.
RECOVERY_BOUND = 45
SLOW_GATEWAY = {"VENDOR_GATEWAY_BACKEND": "simulated", "VENDOR_GATEWAY_SIM_LATENCY_MS": "20"}


def test_a_worker_hosts_link_cut_longer_than_the_lease_then_restored(cluster):
    ids = make_stuck_orders(ORDERS)
    episodes = snapshot_episodes(ids)
    logs = [cluster.worker(name, env=SLOW_GATEWAY) for name in ("worker1", "worker2")]
    dispatch = CountingDispatch(broker_url=cluster.network.broker_url)

    healing_cycle_run(trigger="BEAT", dispatch=dispatch)
    wait_for_progress(ids, ORDERS // 4)
    cut = time.monotonic()
    cluster.hosts["worker1"].link_down()
    # Longer than the lease: worker1's claims run out while it cannot renew
    # them; the other host takes them over through the sweep in recover().
    time.sleep(LEASE_SECONDS * 2)
    redispatched = recover(ids, dispatch=dispatch)
    recovered_in = time.monotonic() - cut
    cluster.hosts["worker1"].link_up()
    # worker1's deliveries resume against claims that are no longer theirs.
    time.sleep(LEASE_SECONDS)
    recover(ids, dispatch=dispatch)

    result = figures(
        "multihost-link-cut", order_ids=ids, episodes=episodes, faults=1, log_paths=logs
    )
    print(f"  re-dispatched: {redispatched}; recovered {recovered_in:.1f}s after the cut")
    assert_sound(result)
    # The cut itself lasts 2 leases; then the lease bound (a lease, the 3 s
    # idle-transaction timeout freeing the cut host's row locks, one sweep),
    # with room for a loaded CI machine.
    assert recovered_in < RECOVERY_BOUND + LEASE_SECONDS * 2, recovered_in


def test_a_worker_host_lost_for_good(cluster):
    ids = make_stuck_orders(ORDERS)
    episodes = snapshot_episodes(ids)
    logs = [cluster.worker(name, env=SLOW_GATEWAY) for name in ("worker1", "worker2")]
    dispatch = CountingDispatch(broker_url=cluster.network.broker_url)

    healing_cycle_run(trigger="BEAT", dispatch=dispatch)
    wait_for_progress(ids, ORDERS // 4)
    lost_at = time.monotonic()
    killed = cluster.hosts["worker1"].kill_all()
    redispatched = recover(ids, dispatch=dispatch)
    recovered_in = time.monotonic() - lost_at

    result = figures(
        "multihost-host-lost", order_ids=ids, episodes=episodes, faults=killed, log_paths=logs
    )
    print(f"  killed: {killed}; re-dispatched: {redispatched}; recovered in {recovered_in:.1f}s")
    assert killed >= 1
    assert_sound(result)
    assert recovered_in < RECOVERY_BOUND, recovered_in
