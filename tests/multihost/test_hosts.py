"""Across machines: worker hosts in network namespaces lose their link or die.

Two worker hosts run the Procfile's worker and reach PostgreSQL and the
broker over their veth cables; the test process plays beat (its cycles and
the lease sweep). Everywhere: lost 0, double-healed 0, and recovery within
the lease bound. CI runs a few hundred orders; MULTIHOST_ORDERS sets more.
"""

from __future__ import annotations

import os
import sys
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
from tests.integration.workers import wait_until

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


# On a worker host: take a row lock inside a pipeline and send the statement
# but not its Sync, as a pool child cut off between the two would leave it.
_LOCK_MID_PIPELINE = """
import time
from django.db import connection, transaction
with transaction.atomic():
    connection.ensure_connection()
    raw = connection.connection
    with raw.pipeline():
        raw.execute("SELECT id FROM {table} WHERE id = %s FOR UPDATE", [{pk}])
        raw.pgconn.flush()
        print("locked", flush=True)
        time.sleep(600)
"""
# The server's keepalives at the cluster's settings (2 s idle, 2 probes 1 s
# apart), with room for a loaded machine; without them: two hours.
MID_PIPELINE_BOUND = 20


def test_a_host_cut_off_mid_pipeline_loses_its_row_locks_to_the_servers_keepalives(cluster):
    """Mid-pipeline the backend is "active", not idle in transaction: the
    idle-transaction timeout never fires, and the cut host's row locks would
    block every healing of that order until the server's TCP gave up."""
    from orders.models import Order

    (pk,) = make_stuck_orders(1)
    log = cluster.log_dir / "worker1-locker.log"
    script = _LOCK_MID_PIPELINE.format(table=Order._meta.db_table, pk=pk)
    cluster.hosts["worker1"].spawn(
        [sys.executable, "manage.py", "shell", "-c", script], env=cluster.env, log_path=log
    )
    try:
        waited, freed = _cut_and_wait_for_the_lock(cluster, log=log, pk=pk)
    finally:
        _terminate_lock_holders(Order._meta.db_table)
    print(f"  row lock of the cut host freed {waited:.1f}s after the cut")
    assert freed, f"row lock still held {waited:.0f}s after the cut"


def _cut_and_wait_for_the_lock(cluster, *, log, pk: int) -> tuple[float, bool]:
    from django.db import connection
    from django.db.utils import OperationalError

    from orders.models import Order

    assert wait_until(lambda: log.exists() and b"locked" in log.read_bytes(), timeout=60), (
        log.read_text()[-3000:] if log.exists() else "no output"
    )

    def locked() -> bool:
        try:
            with connection.cursor() as cursor:
                cursor.execute("BEGIN")
                try:
                    cursor.execute(
                        f"SELECT id FROM {Order._meta.db_table} WHERE id = %s FOR UPDATE NOWAIT",  # noqa: S608 - our table
                        [pk],
                    )
                finally:
                    cursor.execute("ROLLBACK")
        except OperationalError:
            return True
        return False

    assert locked(), "the worker host's pipeline did not take the row lock"
    cluster.hosts["worker1"].link_down()
    cut = time.monotonic()
    freed = wait_until(lambda: not locked(), timeout=MID_PIPELINE_BOUND, interval=0.5)
    return time.monotonic() - cut, freed


def _terminate_lock_holders(table: str) -> None:
    """A failed run leaves the cut host's lock for hours: end it, so the
    test database can be flushed."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l"
            " JOIN pg_database d ON d.oid = l.database AND d.datname = current_database()"
            " WHERE l.relation = %s::regclass AND l.pid <> pg_backend_pid()",
            [table],
        )
