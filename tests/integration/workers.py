"""Real Celery worker processes for integration and fault tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from django.conf import settings

from bench.workers import wait_ready, worker_argv

ROOT = Path(__file__).resolve().parents[2]

# Leases, retry delays and time limits shortened so nothing waits on minutes.
FAST_ENV = {
    # At the test process's priority whatever the environment says
    # (test_worker_nice sets its own).
    "CELERY_WORKER_NICE": "0",
    "HEALING_LEASE_SECONDS": "5",
    "HEALING_DISPATCH_LEASE_SECONDS": "5",
    # Leases this short are the point here: the checks that guard them are off.
    "SILENCED_SYSTEM_CHECKS": "healing.E002,healing.E006",
    "HEALING_TASK_BACKOFF_BASE": "0.2",
    "HEALING_TASK_BACKOFF_MAX": "1",
    "HEALING_TASK_MAX_RETRIES": "3",
    "HEALING_RUN_ON_WORKER_START": "false",
    "CELERY_TASK_SOFT_TIME_LIMIT": "20",
    "CELERY_TASK_TIME_LIMIT": "30",
    "CELERY_WORKER_PREFETCH_MULTIPLIER": "4",
}


def test_database_url() -> str:
    """The URL of the database pytest-django created, for the worker to use."""
    db = settings.DATABASES["default"]
    port = db.get("PORT") or 5432
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{port}/{db['NAME']}"


class Worker:
    def __init__(
        self,
        *,
        pool: str = "prefork",
        concurrency: int = 2,
        env: dict[str, str] | None = None,
        queues: str = "healing,default",
        log_path: Path | None = None,
    ) -> None:
        self.pool = pool
        self.concurrency = concurrency
        self.queues = queues
        self.env = {
            **os.environ,
            **FAST_ENV,
            "DATABASE_URL": test_database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            **(env or {}),
        }
        self.env.pop("TEST_DATABASE_NAME", None)
        self.log_path = log_path or Path(f"/tmp/celery-worker-{os.getpid()}-{id(self)}.log")
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> Worker:
        self.log = self.log_path.open("ab")
        since = self.log_path.stat().st_size
        self.process = subprocess.Popen(
            worker_argv(
                name=f"test-{os.getpid()}-{id(self)}",
                pool=self.pool,
                concurrency=self.concurrency,
                queues=self.queues,
            ),
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_ready(self.process, self.log_path, since=since, timeout=timeout, label="test")
        except BaseException:
            # Not ready in time: no caller will stop it, and a stray worker
            # would consume the next test's messages with this test's settings.
            self.stop(timeout=5)
            raise
        return self

    def children(self) -> list[int]:
        if self.process is None:
            return []
        out = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
        )
        return [int(pid) for pid in out.stdout.split()]

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 20) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "log", None):
            self.log.close()

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(predicate, *, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
