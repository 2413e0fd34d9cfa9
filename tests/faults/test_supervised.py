"""Issue 16 item 4: the broker-restart scenario with the worker under a real
supervisord (deploy/supervisord.conf) — whatever the restart does to the
worker, supervisord brings it back, and the run ends with no manual restart:
lost 0, double-healed 0."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.faults.helpers import (
    CountingDispatch,
    PrivateRedis,
    assert_sound,
    figures,
    make_stuck_orders,
    recover,
    size,
    snapshot_episodes,
    wait_for_progress,
)
from tests.integration.workers import FAST_ENV, test_database_url, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(300),
]

ROOT = Path(__file__).resolve().parents[2]
SUPERVISORD = Path(sys.executable).with_name("supervisord")
SLOW_GATEWAY = {"VENDOR_GATEWAY_BACKEND": "simulated", "VENDOR_GATEWAY_SIM_LATENCY_MS": "15"}


class Supervisor:
    def __init__(self, *, run_dir: Path, broker_url: str) -> None:
        self.run_dir = run_dir
        self.env = {
            **os.environ,
            **FAST_ENV,
            **SLOW_GATEWAY,
            "DATABASE_URL": test_database_url(),
            "CELERY_BROKER_URL": broker_url,
            "SUPERVISOR_DIR": str(ROOT),
            "SUPERVISOR_RUN_DIR": str(run_dir),
            "SUPERVISOR_PYTHON": sys.executable,
            "SUPERVISOR_BEAT": "false",
            "SUPERVISOR_WEB": "false",
            "ENV_FILE": "",
        }
        self.env.pop("TEST_DATABASE_NAME", None)
        self.process: subprocess.Popen | None = None

    @property
    def worker_log(self) -> Path:
        return self.run_dir / "worker.log"

    def log(self) -> str:
        path = self.run_dir / "supervisord.log"
        return path.read_text() if path.exists() else ""

    def worker_starts(self) -> int:
        return self.log().count("spawned: 'worker'")

    def ready_count(self) -> int:
        text = self.worker_log.read_text() if self.worker_log.exists() else ""
        return text.count(" ready.")

    def start(self) -> Supervisor:
        self.process = subprocess.Popen(
            [str(SUPERVISORD), "-c", str(ROOT / "deploy" / "supervisord.conf")],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not wait_until(lambda: self.ready_count() >= 1, timeout=60, interval=0.2):
            self.stop()
            raise RuntimeError("the supervised worker did not become ready:\n" + self.log())
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=150)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


@pytest.mark.skipif(not SUPERVISORD.exists(), reason="supervisor is not installed")
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_broker_restart_under_supervisord_needs_no_manual_restart(tmp_path):
    total, restarts = size(150, 2000), size(2, 3)
    ids = make_stuck_orders(total)
    episodes = snapshot_episodes(ids)

    with PrivateRedis() as broker:
        dispatch = CountingDispatch(broker_url=broker.url)
        supervisor = Supervisor(run_dir=tmp_path, broker_url=broker.url).start()
        try:
            from healing.cycle import healing_cycle_run

            healing_cycle_run(trigger="BEAT", dispatch=dispatch)
            for k in range(restarts):
                wait_for_progress(ids, total * (k + 1) // (restarts + 3))
                broker.restart()  # every queued heal_order is gone
                time.sleep(1)
            # No restart by the test: a worker that exited is supervisord's.
            redispatched = recover(ids, dispatch=dispatch, timeout=150)
            starts = supervisor.worker_starts()
        finally:
            supervisor.stop()

    result = figures(
        "broker-restart-supervised",
        order_ids=ids,
        episodes=episodes,
        faults=restarts,
        log_paths=[supervisor.worker_log],
    )
    print(f"  re-dispatched through leases: {redispatched}; worker starts: {starts}")
    assert starts >= 1
    assert_sound(result)
