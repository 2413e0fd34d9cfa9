"""Smoke test of ``manage.py bench_healing`` at a tiny size: it runs end to end
against real PostgreSQL, Redis and worker processes and prints every figure.
The benchmark itself stays out of the suite (docs/BENCHMARK.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench.report import JSON_KEYS
from tests.bench.conftest import ROOT, BenchRun

pytestmark = [pytest.mark.integration]


@pytest.mark.timeout(330)
def test_bench_prints_every_figure(bench_run: BenchRun) -> None:
    done = bench_run(
        "manage.py",
        "bench_healing",
        "--orders=1000",
        "--stuck=60",
        "--workers=1",
        "--concurrency=2",
        "--latency-sample=20",
        "--gateway-latency-ms=50",
        "--latency-threads=5",
        "--detect-runs=2",
        "--timeout=60",
        "--backlog-orders=2000",
        "--backlog-stuck=300",
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])

    assert list(figures) == JSON_KEYS
    assert (figures["orders"], figures["stuck"], figures["workers"]) == (1000, 60, 1)
    assert figures["pool"] == "prefork"
    for key in set(JSON_KEYS) - {"pool"}:
        assert isinstance(figures[key], int | float), key
        assert figures[key] > 0, key
    assert figures["detect_ms_max"] >= figures["detect_ms_p50"]
    # Every stuck order is healed by the same statements, within the engine's bound.
    assert 5 <= figures["statements_per_heal"] <= 8
    assert figures["worker_rss_mb_max"] < 1000
    assert figures["time_to_heal_p95_s"] < 60
    # The apply step's statements go in one round trip (orders.sql.pipelined),
    # with their BEGIN; its COMMIT and the statements outside it add one each.
    assert 3 <= figures["pg_round_trips_per_heal"] < figures["statements_per_heal"]
    assert "met?" in done.stdout and "heal_per_s" in done.stdout.split("met?")[1]


def test_bench_refuses_without_postgres() -> None:
    env = {**os.environ, "DATABASE_URL": "", "CELERY_BROKER_URL": ""}
    done = subprocess.run(
        [sys.executable, "manage.py", "bench_healing", "--orders=10", "--stuck=1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "needs PostgreSQL and Redis" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
