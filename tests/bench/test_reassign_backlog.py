"""Smoke test of ``python -m bench.reassign_backlog`` at 200 stuck orders: real
PostgreSQL, broker and prefork workers; vendors with room for a few orders
each, so the best ones fill during the cycle. Every heal reassigns, the three
retry counts agree (task RETRY states, the healings' retry_count, the logged
"healing retry scheduled" lines) and every logged cause is the capacity race,
and no vendor ends over its capacity. The 25,000 figures are in
docs/BENCHMARK.md."""

from __future__ import annotations

import json

import pytest

from tests.bench.conftest import BenchRun

pytestmark = [pytest.mark.integration]

BENCH_DATABASE = "bench_reassign"


@pytest.mark.timeout(300)
def test_reassign_backlog_counts_every_retry_and_its_cause(bench_run: BenchRun) -> None:
    done = bench_run(
        "-m",
        "bench.reassign_backlog",
        "--orders=1000",
        "--stuck=200",
        "--headroom=4",
        "--spreads=1,8",
        "--workers=1",
        "--concurrency=2",
        "--timeout=120",
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])

    assert [run["spread"] for run in figures["runs"]] == [1, 8]
    for run in figures["runs"]:
        assert run["heals"] == 200
        assert run["outcomes"] == {"SUCCESS": 200}
        assert run["retries"] == run["retry_count_sum"] == run["retry_lines"]
        assert set(run["causes"]) <= {"vendor N is inactive or at capacity"}
        assert sum(run["causes"].values()) == run["retries"]
        assert run["vendors_overfilled"] == 0
        assert run["vendors_full"] > 0  # the pool did fill up
    assert "retry_share_pct" in done.stdout
