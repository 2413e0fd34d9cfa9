"""Issue 16 item 5: the pg-terminate scenario with the worker connecting
through pgbouncer in transaction mode, configured from deploy/pgbouncer.ini
(only the port, the auth file and the log/pid paths changed). The Procfile's
worker command with DB_POOLER=pgbouncer; its server connections are
terminated (pg_terminate_backend) mid-cycle, several times: lost 0, double 0.

pgbouncer is Debian's package (.ci/run installs it); it refuses to run as
root, so as root it is started as the ``postgres`` user."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from django.conf import settings

from healing.cycle import healing_cycle_run
from tests.faults.helpers import (
    assert_sound,
    figures,
    free_port,
    make_stuck_orders,
    recover,
    size,
    snapshot_episodes,
    terminate_worker_backends,
    wait_for_progress,
    worker_log,
)
from tests.integration.workers import ROOT, Worker, wait_until
from tests.multihost.brokers import broker_is_rabbitmq

pytestmark = [
    pytest.mark.integration,
    # Broker-independent (pgbouncer is between worker and database): once, on Redis.
    pytest.mark.skipif(
        broker_is_rabbitmq(os.environ.get("CELERY_BROKER_URL", "")), reason="run on Redis"
    ),
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(240),
    pytest.mark.skipif(shutil.which("pgbouncer") is None, reason="pgbouncer is not installed"),
]

SLOW_GATEWAY = {"VENDOR_GATEWAY_BACKEND": "simulated", "VENDOR_GATEWAY_SIM_LATENCY_MS": "15"}


class Pgbouncer:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir, self.port = run_dir, free_port()
        self.process: subprocess.Popen | None = None

    def config(self) -> str:
        """deploy/pgbouncer.ini with this run's port, auth file and paths."""
        db = settings.DATABASES["default"]
        text = (ROOT / "deploy" / "pgbouncer.ini").read_text()
        text = text.replace(
            "* = host=127.0.0.1 port=5432",
            f"* = host={db.get('HOST') or '127.0.0.1'} port={db.get('PORT') or 5432}",
        )
        text = re.sub(r"(?m)^listen_port = .*$", f"listen_port = {self.port}", text)
        text = re.sub(r"(?m)^auth_file = .*$", f"auth_file = {self.run_dir / 'userlist.txt'}", text)
        return text.replace(
            "[pgbouncer]\n",
            f"[pgbouncer]\nlogfile = {self.run_dir / 'pgbouncer.log'}\n"
            f"pidfile = {self.run_dir / 'pgbouncer.pid'}\nunix_socket_dir =\n",
            1,
        )

    def start(self) -> Pgbouncer:
        user = settings.DATABASES["default"].get("USER") or "postgres"
        self.run_dir.chmod(0o777)
        (self.run_dir / "userlist.txt").write_text(f'"{user}" ""\n')
        ini = self.run_dir / "pgbouncer.ini"
        ini.write_text(self.config())
        argv = ["pgbouncer", str(ini)]
        if os.geteuid() == 0:
            argv = ["pgbouncer", "-u", "postgres", str(ini)]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        if not wait_until(self.answers, timeout=10, interval=0.1):
            raise RuntimeError("pgbouncer did not start:\n" + self.log())
        return self

    def answers(self) -> bool:
        done = subprocess.run(
            ["pg_isready", "-h", "127.0.0.1", "-p", str(self.port), "-q"], check=False
        )
        return done.returncode == 0

    def log(self) -> str:
        path = self.run_dir / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def test_pg_terminate_with_the_worker_behind_pgbouncer_in_transaction_mode(request):
    total, rounds = size(200, 2000), size(3, 8)
    ids = make_stuck_orders(total)
    episodes = snapshot_episodes(ids)
    log = worker_log(request)
    db = settings.DATABASES["default"]
    # Not pytest's tmp_path: its parents are root's alone, and pgbouncer runs as postgres.
    run_dir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    bouncer = Pgbouncer(run_dir).start()
    user = db.get("USER") or "postgres"
    env = {
        **SLOW_GATEWAY,
        "DB_POOLER": "pgbouncer",
        "DATABASE_URL": f"postgres://{user}@127.0.0.1:{bouncer.port}/{db['NAME']}",
    }
    terminated = 0
    try:
        with Worker(pool="prefork", concurrency=2, env=env, log_path=log):
            healing_cycle_run(trigger="BEAT")
            for k in range(rounds):
                wait_for_progress(ids, total * (k + 1) // (rounds + 2))
                terminated += terminate_worker_backends()
            recover(ids)
    finally:
        bouncer.stop()
        pooled = len(re.findall(r"new connection to server", bouncer.log()))
        shutil.rmtree(run_dir, ignore_errors=True)

    result = figures(
        "pgbouncer-pg-terminate",
        order_ids=ids,
        episodes=episodes,
        faults=terminated,
        log_paths=[log],
    )
    text = log.read_text(errors="replace")
    print(f"  server connections pgbouncer opened: {pooled}; backends terminated: {terminated}")
    assert pooled >= 1  # the worker did go through pgbouncer
    assert "prepared statement" not in text  # no "... does not exist" from a lent connection
    assert terminated >= rounds
    assert_sound(result)
