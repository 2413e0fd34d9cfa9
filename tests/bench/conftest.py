"""What the benchmark smoke tests share: a database of their own, and the
benchmark run as a subprocess against it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from psycopg import sql

from config.database import server_params

ROOT = Path(__file__).resolve().parents[2]

BenchRun = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def bench_run(request: pytest.FixtureRequest) -> Iterator[BenchRun]:
    """``bench_run(*argv, timeout=...)`` runs ``python <argv>`` on a database of
    this test's own (``<test db>_<module's BENCH_DATABASE>``; a benchmark
    replaces its data), dropped afterwards with the per-size ones it made."""
    db = settings.DATABASES["default"]
    name = f"{db['NAME']}_{getattr(request.module, 'BENCH_DATABASE', 'bench')}"
    server = {k: v for k, v in server_params(db).items() if k != "connect_timeout"}
    password = f":{server['password']}" if server["password"] else ""
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{server['user']}{password}@{server['host']}:{server['port']}/{name}",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    }
    env.pop("TEST_DATABASE_NAME", None)

    def run(*argv: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - our interpreter, fixed arguments
            [sys.executable, *argv],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    yield run
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as conn:
        names = conn.execute(
            "SELECT datname FROM pg_database WHERE datname = %s OR datname LIKE %s",
            [name, f"{name}\\_%"],
        ).fetchall()
        for (database,) in names:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
