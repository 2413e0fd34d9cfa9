"""The benchmark's phases that heal in this process, without workers: the
sequential baseline (the seed's way, with its statement and round-trip
counts) and the raw SQL limit.

Kept out of ``bench_healing`` because they need none of the command's state
beyond a few arguments; each returns plain figures for its report.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.test.utils import override_settings
from tqdm import tqdm

from bench.heal_path import pipeline_active
from bench.phases import cycle_timed
from bench.rawsql import raw_heal_all
from config.database import server_params
from healing.cycle import healing_cycle_run
from healing.errors import HealingTransientError
from healing.execution import healing_execute
from healing.models import Trigger


class RoundTrips:
    """What this process sends to PostgreSQL, as a ``connection.execute_wrapper``.

    Statements alone overstate the cost: statements sent in an
    ``orders.sql.pipelined`` block share one round trip with their
    transaction's BEGIN (``batches`` counts the blocks), and every transaction
    adds a COMMIT, which no wrapper sees (``transactions`` counts them).
    """

    def __init__(self) -> None:
        self.statements = 0
        self.transactions = 0
        self.pipelined = 0
        self.batches = 0
        self.begins_pipelined = 0
        self._open_transaction = False
        self._in_batch = False

    def _committed(self) -> None:
        self.transactions += 1
        self._open_transaction = False

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.statements += 1
        sent_pipelined = pipeline_active(connection)
        if sent_pipelined:
            self.pipelined += 1
            self.batches += not self._in_batch
        self._in_batch = sent_pipelined
        # One on_commit hook per transaction counts its commit.
        if connection.in_atomic_block and not self._open_transaction:
            self._open_transaction = True
            self.begins_pipelined += sent_pipelined
            transaction.on_commit(self._committed)
        return execute(sql, params, many, context)

    def round_trips(self) -> int:
        """A statement is a round trip, or a pipelined block is one; every
        transaction adds its COMMIT and, unless it went in a block, psycopg's
        BEGIN before its first statement."""
        return (
            self.statements
            - self.pipelined
            + self.batches
            + 2 * self.transactions
            - self.begins_pipelined
        )


def _heal_inline(healing_id: int, token: str, counter: RoundTrips) -> str:
    """One healing executed here, its statements counted; a transient error
    retries at once, as eager mode does. Returns the status it ended in."""
    current, status = token, ""
    for retries in range(3):
        try:
            with connection.execute_wrapper(counter):
                status = healing_execute(
                    healing_id=healing_id, token=current, retries=retries
                ).status
            break
        except HealingTransientError as exc:
            current, status = str(exc.token), "TRANSIENT"
    return status


def sequential_cycle_run(*, latency_ms: float, desc: str) -> dict[str, Any]:
    """The seed's way: one process detects, then heals each order in a row,
    with the simulated gateway answering after ``latency_ms``."""
    counter = RoundTrips()
    most = 0
    executed = 0
    outcomes: dict[str, int] = {}

    def inline(pairs: list[tuple[int, str]]) -> None:
        nonlocal executed, most
        for healing_id, token in tqdm(pairs, desc=desc, unit="heal", file=sys.stderr):
            before = counter.statements
            status = _heal_inline(healing_id, token, counter)
            executed += 1
            most = max(most, counter.statements - before)
            outcomes[status] = outcomes.get(status, 0) + 1

    with override_settings(
        VENDOR_GATEWAY_BACKEND="simulated",
        VENDOR_GATEWAY_SIM_LATENCY_MS=latency_ms,
        VENDOR_GATEWAY_SIM_FAILURE_RATE=0.0,
    ):
        started = time.perf_counter()
        healing_cycle_run(trigger=Trigger.CLI, dispatch=inline)
        elapsed = time.perf_counter() - started
    return {
        "seconds": elapsed,
        "healings": executed,
        "outcomes": outcomes,
        "statements": counter.statements,
        "statements_per_heal": counter.statements / executed if executed else 0.0,
        "statements_max": most,
        "transactions": counter.transactions,
        "pipelined_per_heal": counter.pipelined / executed if executed else 0.0,
        "round_trips_per_heal": counter.round_trips() / executed if executed else 0.0,
    }


def raw_sql_measure(
    *, db: Mapping[str, Any], connections: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """The limit: one cycle's healings done by ``bench.rawsql`` over as many
    psycopg connections as the workers have, so the ORM path's rate reads
    against the same transaction without Django or Celery."""
    pairs: list[tuple[int, str]] = []
    cycle_timed(pairs.extend)
    log(f"raw SQL: {len(pairs)} healings over {connections} psycopg connections")
    params = server_params(db)
    params.pop("connect_timeout")
    with tqdm(total=len(pairs), desc="raw SQL", unit="heal", file=sys.stderr) as bar:
        elapsed, outcomes = raw_heal_all(
            conninfo={"dbname": db["NAME"], **params},
            healing_ids=[healing_id for healing_id, _ in pairs],
            connections=connections,
            lease_seconds=settings.HEALING_LEASE_SECONDS,
            progress=bar,
        )
    return {
        "healings": len(pairs),
        "outcomes": outcomes,
        "seconds": elapsed,
        "per_s": len(pairs) / elapsed,
        "connections": connections,
    }
