"""Issue 16 item 4: the broker-restart and whole-worker-SIGKILL scenarios with
the worker under a real supervisord (deploy/supervisord.conf). The broker goes
away for a few seconds (every queued heal_order is gone); then the worker's
whole process group is SIGKILLed mid-cycle, and supervisord, not the test,
starts a new one: the test asserts a new pid came up and the run ends with
lost 0, double-healed 0. (Whether a broker outage alone makes the worker exit
depends on kombu: it does when the worker held unacknowledged messages; the
figures line reports how many starts there were.)"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.faults.helpers import (
    LEASE_SECONDS,
    CountingDispatch,
    PrivateRedis,
    assert_sound,
    figures,
    final_count,
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

    def worker_pids(self) -> list[int]:
        """Every pid supervisord spawned the worker with, in order."""
        return [int(pid) for pid in re.findall(r"spawned: 'worker' with pid (\d+)", self.log())]

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
                wait_for_progress(ids, total * (k + 1) // (restarts + 4), timeout=15)
                broker.kill()  # every queued heal_order is gone
                time.sleep(3)  # long enough for the worker to notice
                broker.start()
            # The lost heals' leases run out; a cycle re-sends them, and the
            # worker is killed while it works through them.
            time.sleep(LEASE_SECONDS + 0.5)
            before = final_count(ids)
            healing_cycle_run(trigger="BEAT", dispatch=dispatch)
            wait_until(lambda: final_count(ids) > before + 5, timeout=15, interval=0.05)
            killed = supervisor.worker_pids()[-1]
            os.killpg(killed, signal.SIGKILL)  # the whole worker, children and all
            # No restart by the test: a new worker is supervisord's doing.
            assert wait_until(
                lambda: supervisor.worker_pids()[-1] != killed, timeout=60, interval=0.2
            ), supervisor.log()
            redispatched = recover(ids, dispatch=dispatch, timeout=150)
            pids = supervisor.worker_pids()
        finally:
            supervisor.stop()

    result = figures(
        "broker-restart-supervised",
        order_ids=ids,
        episodes=episodes,
        faults=restarts + 1,
        log_paths=[supervisor.worker_log],
    )
    print(
        f"  re-dispatched through leases: {redispatched}; worker starts: {len(pids)} "
        f"(pids {pids}; SIGKILLed {killed})"
    )
    assert killed not in pids[pids.index(killed) + 1 :]
    assert len(pids) >= 2 and pids[-1] != killed
    assert_sound(result)
