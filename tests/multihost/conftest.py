from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from tests.faults import helpers as fault_helpers
from tests.integration.workers import FAST_ENV, test_database_url, wait_until
from tests.multihost.hosts import BROKER_ADDRESS, DB_ADDRESS, Host, Network, namespaces_unavailable
from tests.multihost.hosts import procfile_argv as procfile_argv

HOST_NAMES = ("web", "beat", "worker1", "worker2")


class Cluster:
    """The bridge plus four hosts; ``env`` is what every process there gets."""

    def __init__(self, *, network: Network, hosts: dict[str, Host], log_dir: Path) -> None:
        self.network = network
        self.hosts = hosts
        self.log_dir = log_dir
        database = test_database_url().replace("@127.0.0.1:", f"@{DB_ADDRESS}:")
        database = database.replace("@localhost:", f"@{DB_ADDRESS}:")
        self.env = {
            **os.environ,
            **FAST_ENV,
            "DATABASE_URL": database,
            "CELERY_BROKER_URL": network.broker_url,
            "REDIS_URL": f"redis://{BROKER_ADDRESS}:{network.broker_port}/1",
            # A host cut off mid-transaction keeps its row locks until PostgreSQL
            # ends the idle transaction: at the short test leases, after 3 s
            # (production: 60 s beside a 60 s lease).
            "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS": "3000",
            # ... or, cut off mid-pipeline (no timeout applies), until the
            # server's keepalives give up on it: about 4 s here (production:
            # about a minute).
            "DB_KEEPALIVES_IDLE": "2",
            "DB_KEEPALIVES_INTERVAL": "1",
            "DB_KEEPALIVES_COUNT": "2",
        }
        self.env.pop("TEST_DATABASE_NAME", None)

    def worker(
        self, host: str, *, pool: str = "threads", concurrency: int = 8, env: dict | None = None
    ) -> Path:
        """The Procfile's worker on ``host``; returns its log once it is ready."""
        log = self.log_dir / f"{host}-worker.log"
        since = log.stat().st_size if log.exists() else 0
        argv = [
            *procfile_argv("worker"),
            "-P", pool, "-c", str(concurrency), "--without-gossip", "--without-mingle",
            "-n", f"{host}@%h",
        ]  # fmt: skip
        process = self.hosts[host].spawn(argv, env={**self.env, **(env or {})}, log_path=log)

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"worker on {host} exited: {log.read_text()[-3000:]}")
            with log.open("rb") as handle:
                handle.seek(since)
                return b"ready." in handle.read()

        if not wait_until(ready, timeout=60):
            raise RuntimeError(f"worker on {host} not ready: {log.read_text()[-3000:]}")
        return log


@pytest.fixture
def cluster(request: pytest.FixtureRequest, settings) -> Iterator[Cluster]:
    """Four test hosts on a private bridge; skipped (failed in CI) where
    namespaces cannot be made; everything removed afterwards."""
    reason = namespaces_unavailable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs the multi-host scenarios as root: {reason}")
        pytest.skip(f"multi-host scenarios need network namespaces: {reason}")
    if connection.vendor != "postgresql":
        pytest.skip("multi-host scenarios need PostgreSQL (DATABASE_URL=postgres://...)")
    settings.HEALING_LEASE_SECONDS = int(FAST_ENV["HEALING_LEASE_SECONDS"])
    settings.HEALING_DISPATCH_LEASE_SECONDS = int(FAST_ENV["HEALING_DISPATCH_LEASE_SECONDS"])
    settings.HEALING_TASK_MAX_RETRIES = int(FAST_ENV["HEALING_TASK_MAX_RETRIES"])
    settings.HEALING_GUARD_MIN_STUCK = 10**9
    port = int(connection.settings_dict.get("PORT") or 5432)
    network = Network(database_port=port)
    hosts: dict[str, Host] = {}
    log_dir = fault_helpers.worker_log(request).parent / request.node.name
    log_dir.mkdir(parents=True, exist_ok=True)
    for old in log_dir.glob("*.log"):
        old.unlink()
    try:
        network.start()
        for index, name in enumerate(HOST_NAMES):
            hosts[name] = Host(network=network, name=name, index=index).create()
        yield Cluster(network=network, hosts=hosts, log_dir=log_dir)
    finally:
        for host in hosts.values():
            host.terminate()
        deadline = time.monotonic() + 20
        for host in hosts.values():
            host.stop(deadline=deadline)
        network.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = [line for line in fault_helpers.REPORTED if line.startswith("FIGURES multihost")]
    if lines:
        terminalreporter.section("multi-host figures")
        for line in lines:
            terminalreporter.write_line(line)
