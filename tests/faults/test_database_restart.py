"""Issue 16, "Done when": PostgreSQL goes away while a cycle is dispatching,
and comes back; the next cycle runs within a minute of the database's return
(the RUNNING cycle row does not block cycles for HEALING_CYCLE_LOCK_SECONDS),
and every healing still ends: lost 0, double-healed 0.

How the restart is made. In CI (``FAULTS_RESTART_POSTGRES=1``, set by
.ci/run, which owns the server and runs this phase alone) it is a real one:
the cluster is stopped in ``immediate`` mode, as a crash stops it (no
checkpoint: the start replays WAL), and started again OUTAGE seconds later
(``pg_ctlcluster``). That also proves the asynchronous commits of the heal
path (the claim, the vendor-message row) safe: whatever the crash took of
them, nothing is lost or healed twice. Elsewhere the machine's PostgreSQL is
shared and not ours to restart, so the outage is made on the test database
alone, the way a restart looks to its clients: every backend connected to it
is terminated (pg_terminate_backend: the cycle's own connection, its
heartbeat thread's, the worker's) and for OUTAGE seconds no new connection
is accepted (ALTER DATABASE ... ALLOW_CONNECTIONS false, which holds for
superusers too), from a connection to the ``postgres`` database.

Time scale: the cycle's heartbeat (10 s) and stale age (60 s) are divided by
SCALE = 12, so "within a minute" is within 5 s of the database's return.
Beat is played by this process: run_cycle's body every 15/12 s."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

import psycopg
import pytest
from django.conf import settings as django_settings
from django.db import DatabaseError, connection

from healing.cycle import healing_cycle_run
from healing.dispatch import healings_dispatch
from healing.liveness import connection_drop_broken
from healing.models import HealingCycle
from tests.faults.helpers import (
    assert_sound,
    figures,
    make_stuck_orders,
    recover,
    size,
    snapshot_episodes,
    worker_log,
)
from tests.integration.workers import Worker, wait_until
from tests.multihost.brokers import broker_is_rabbitmq

pytestmark = [
    pytest.mark.integration,
    # Broker-independent (the outage is the database's): run once, in the Redis phase.
    pytest.mark.skipif(
        broker_is_rabbitmq(os.environ.get("CELERY_BROKER_URL", "")), reason="run on Redis"
    ),
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(240),
]

SCALE = 12
OUTAGE = 3.0
BEAT = 15 / SCALE
ENV = {"VENDOR_GATEWAY_BACKEND": "simulated", "VENDOR_GATEWAY_SIM_LATENCY_MS": "15"}


class Outage:
    """Terminate every client of the test database and refuse new ones."""

    def __init__(self) -> None:
        self.name = django_settings.DATABASES["default"]["NAME"]
        self.admin = _admin_connection()
        self.terminated = 0
        self.back_at: float | None = None

    def clients(self) -> int:
        with self.admin.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                "AND backend_type = 'client backend'",
                [self.name],
            )
            row = cursor.fetchone()
        return int(row[0]) if row else 0

    def down(self) -> None:
        with self.admin.cursor() as cursor:
            cursor.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [self.name],
            )
            row = cursor.fetchone()
        self.terminated += int(row[0]) if row else 0

    def up(self) -> None:
        with self.admin.cursor() as cursor:
            cursor.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')
        self.back_at = time.monotonic()

    def close(self) -> None:
        self.up()
        self.admin.close()


class ServerRestart(Outage):
    """Stop the whole PostgreSQL cluster as a crash does, start it again on ``up``."""

    def __init__(self, cluster: tuple[str, str]) -> None:
        self.cluster = cluster
        super().__init__()

    def _ctl(self, *args: str) -> None:
        subprocess.run(  # noqa: S603 - a fixed command line for our own cluster
            ["pg_ctlcluster", "--skip-systemctl-redirect", *self.cluster, *args],  # noqa: S607
            check=True,
            capture_output=True,
            timeout=60,
        )

    def clients(self) -> int:
        try:
            return super().clients()
        except psycopg.OperationalError:
            return 0

    def down(self) -> None:
        self.terminated += self.clients() + 1  # every client, this admin connection too
        self._ctl("stop", "-m", "immediate")
        self.admin.close()

    def up(self) -> None:
        self._ctl("start")
        self.admin = _admin_connection(wait=30)
        self.back_at = time.monotonic()

    def close(self) -> None:
        if self.back_at is None:
            self.up()
        self.admin.close()


def _admin_connection(*, wait: float = 0) -> psycopg.Connection:
    db = django_settings.DATABASES["default"]
    deadline = time.monotonic() + wait
    while True:
        try:
            return psycopg.connect(
                host=db.get("HOST") or "127.0.0.1",
                port=int(db.get("PORT") or 5432),
                user=db.get("USER") or "postgres",
                password=db.get("PASSWORD") or None,
                dbname="postgres",
                autocommit=True,
            )
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _local_cluster() -> tuple[str, str] | None:
    """The (version, name) of the local cluster on the database's port, if ours to restart."""
    if os.environ.get("FAULTS_RESTART_POSTGRES") != "1" or not shutil.which("pg_lsclusters"):
        return None
    port = str(django_settings.DATABASES["default"].get("PORT") or 5432)
    listed = subprocess.run(  # noqa: S603 - a fixed command line
        ["pg_lsclusters", "--no-header"],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
    )
    for line in listed.stdout.splitlines():
        version, name, cluster_port, *_ = line.split()
        if cluster_port == port:
            return version, name
    return None


def _beat_cycle() -> bool:
    """run_cycle's body (healing.tasks.run_cycle): True if the cycle ran."""
    connection_drop_broken()
    try:
        return healing_cycle_run(trigger="BEAT").ran
    except DatabaseError:
        connection.close()
        return False


def test_database_restart_while_a_cycle_dispatches(request, settings):
    settings.HEALING_CYCLE_HEARTBEAT_SECONDS = 10 / SCALE
    settings.HEALING_CYCLE_STALE_SECONDS = 60 / SCALE
    total = size(200, 2000)
    ids = make_stuck_orders(total)
    episodes = snapshot_episodes(ids)
    log = worker_log(request)
    cluster = _local_cluster()
    outage = ServerRestart(cluster) if cluster else Outage()

    def dispatch_through_an_outage(pairs: list[tuple[int, str]]) -> None:
        # Half the tasks leave, the database goes away, the rest leave.
        healings_dispatch(pairs[: len(pairs) // 2])
        wait_until(lambda: outage.clients() > 1, timeout=5, interval=0.05)  # the worker's too
        outage.down()
        threading.Timer(OUTAGE, outage.up).start()
        healings_dispatch(pairs[len(pairs) // 2 :])

    worker = Worker(pool="prefork", concurrency=2, env=ENV, log_path=log).start()
    try:
        with pytest.raises(DatabaseError):
            healing_cycle_run(trigger="BEAT", dispatch=dispatch_through_an_outage)
        while outage.back_at is None:
            time.sleep(0.05)
        ran_after = None
        deadline = time.monotonic() + 120
        while ran_after is None and time.monotonic() < deadline:
            if _beat_cycle():
                ran_after = time.monotonic() - outage.back_at
            else:
                time.sleep(BEAT)
        recover(ids)
    finally:
        worker.stop()
        outage.close()

    result = figures(
        "database-restart-mid-dispatch",
        order_ids=ids,
        episodes=episodes,
        faults=1,
        log_paths=[log],
    )
    first = HealingCycle.objects.order_by("pk").first()
    assert first is not None
    print(
        f"  {'server crash-stopped, clients' if cluster else 'backends terminated'} "
        f"{outage.terminated}; outage {OUTAGE:.0f}s; first cycle "
        f"{first.status} ({first.error[:60]!r}); next cycle ran {ran_after}s after the "
        f"database's return (x{SCALE}: {(ran_after or 0) * SCALE:.0f}s at default settings)"
    )
    assert ran_after is not None and ran_after <= 60 / SCALE
    assert first.status != "RUNNING"
    assert_sound(result)
