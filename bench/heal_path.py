"""CPU, statements and PostgreSQL round trips of the in-process heal path, per heal.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_heal_path \\
    ALLOW_INSECURE_DEFAULTS=true python -m bench.heal_path --orders 20000 --stuck 3000

Seeds the database (its name must contain ``bench``), runs one cycle whose
dispatch heals every healing in this process with the simulated gateway
answering at once, and prints per heal: CPU milliseconds of this process
(process time: robust to other load on the machine), CPU milliseconds of its
PostgreSQL backend (read from ``/proc`` when the server runs on this host),
SQL statements, explicit commits and their sum, the round trips to
PostgreSQL; plus wall time. The measurement the restructure (issue 13) and
the heal-path work (issue 15) compare before and after.

``RoundTrips`` is what ``bench_healing`` can wrap around its own sequential
run for its ``pg_round_trips_per_heal`` key.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class RoundTrips:
    """Statements (every ``execute`` through Django) and explicit COMMITs
    (transaction blocks ending) on one connection, and that connection's
    PostgreSQL backend CPU seconds (None when not measurable)."""

    statements: int = 0
    commits: int = 0
    backend_cpu_s: float | None = None
    # Statements sent in orders.sql.pipelined blocks, and those blocks: a
    # block's statements (and its transaction's BEGIN) are one round trip.
    pipelined: int = 0
    batches: int = 0

    @property
    def round_trips(self) -> int:
        return self.statements - self.pipelined + self.batches + self.commits


def pipeline_active(connection: Any) -> bool:
    """True while ``connection``'s statements are pipelined (orders.sql.pipelined)."""
    if connection.vendor != "postgresql" or connection.connection is None:
        return False
    return bool(connection.connection.pgconn.pipeline_status)


def _backend_cpu_seconds(connection: Any) -> float | None:
    """User + system CPU of this connection's server process (same host only)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return None
    # Fields 14 and 15 of proc(5), counted after the ")" that ends field 2.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def round_trips_counted(connection: Any) -> Iterator[RoundTrips]:
    """Count what runs on ``connection`` inside the block.

    Statements through ``connection.execute_wrapper``; commits by wrapping
    the DB-API connection's ``commit`` (what ``transaction.atomic`` calls
    when its block ends; an autocommitted statement needs no COMMIT round
    trip). Usage: ``with round_trips_counted(connection) as trips: ...;
    trips.round_trips``.
    """
    counted = RoundTrips()
    connection.ensure_connection()
    cpu_before = _backend_cpu_seconds(connection)
    raw = connection.connection
    original_commit = raw.commit

    def commit() -> Any:
        counted.commits += 1
        return original_commit()

    in_batch = False

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal in_batch
        counted.statements += 1
        pipelined = pipeline_active(connection)
        if pipelined:
            counted.pipelined += 1
            counted.batches += not in_batch
        in_batch = pipelined
        return execute(sql, params, many, context)

    raw.commit = commit
    try:
        with connection.execute_wrapper(count):
            yield counted
    finally:
        raw.commit = original_commit
    cpu_after = _backend_cpu_seconds(connection)
    if cpu_before is not None and cpu_after is not None:
        counted.backend_cpu_s = cpu_after - cpu_before


def _heal_inline(pairs: list[tuple[int, str]], cpu: list[float], wall: list[float]) -> None:
    from healing.errors import HealingTransientError
    from healing.execution import healing_execute

    for healing_id, token in pairs:
        current = token
        started, started_wall = time.process_time(), time.perf_counter()
        for retries in range(3):
            try:
                healing_execute(healing_id=healing_id, token=current, retries=retries)
                break
            except HealingTransientError as exc:
                current = str(exc.token)
        cpu.append(time.process_time() - started)
        wall.append(time.perf_counter() - started_wall)


def _one_run(args: argparse.Namespace) -> dict[str, Any]:
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import override_settings

    from healing.cycle import healing_cycle_run

    call_command("seed_marketplace", orders=args.orders, stuck=args.stuck, quiet=True)
    cpu: list[float] = []
    wall_per_heal: list[float] = []
    trips = RoundTrips()

    def inline(pairs: list[tuple[int, str]]) -> None:
        nonlocal trips
        with round_trips_counted(connection) as trips:
            _heal_inline(pairs, cpu, wall_per_heal)

    with override_settings(
        VENDOR_GATEWAY_BACKEND="simulated",
        VENDOR_GATEWAY_SIM_LATENCY_MS=0,
        VENDOR_GATEWAY_SIM_FAILURE_RATE=0.0,
    ):
        wall = time.perf_counter()
        healing_cycle_run(trigger="CLI", dispatch=inline)
        wall = time.perf_counter() - wall
    heals = len(cpu) or 1
    backend = trips.backend_cpu_s
    return {
        "heals": len(cpu),
        "cpu_ms_per_heal": round(1000 * statistics.fmean(cpu), 3) if cpu else 0.0,
        "cpu_ms_per_heal_p50": round(1000 * statistics.median(cpu), 3) if cpu else 0.0,
        "wall_ms_per_heal": round(1000 * statistics.fmean(wall_per_heal), 3) if cpu else 0.0,
        "pg_cpu_ms_per_heal": None if backend is None else round(1000 * backend / heals, 3),
        "statements_per_heal": round(trips.statements / heals, 3),
        "commits_per_heal": round(trips.commits / heals, 3),
        "pipelined_per_heal": round(trips.pipelined / heals, 3),
        "pg_round_trips_per_heal": round(trips.round_trips / heals, 3),
        "wall_s": round(wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--orders", type=int, default=20000)
    parser.add_argument("--stuck", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=1, help="Reseed and measure again.")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    if "bench" not in settings.DATABASES["default"]["NAME"]:
        sys.exit("bench.heal_path replaces its database's data: use a database named *bench*")
    call_command("migrate", verbosity=0)
    for _ in range(args.repeat):
        print(json.dumps(_one_run(args)), flush=True)


if __name__ == "__main__":
    main()
