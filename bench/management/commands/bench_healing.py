"""Benchmark: detection, fan-out and healing throughput against the machine's measured limits.

One run seeds (or reuses) a marketplace in its own database, then measures,
on the same database and broker:

- detection time at the chosen size and at 0.1x / 3x the size, same stuck count;
- fan-out: one cycle creating and sending every healing task;
- healing throughput with real worker processes, dispatch-to-outcome times,
  statements per healing and peak worker RSS;
- the limits: the same healing transaction in raw SQL over psycopg with as
  many connections as the workers have, and a no-op task drained by the same
  workers;
- a sequential cycle (detect, then heal each order in a row with the same
  services) with the gateway answering at once, and with simulated vendor
  latency on a sample, against the pipeline on a thread pool.

It prints a table and, as its last line, one JSON object (docs/BENCHMARK.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import redis
from celery.signals import after_task_publish
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.test.utils import override_settings
from django.utils import timezone
from tqdm import tqdm

from bench import dataset, phases
from bench.heal_path import pipeline_active
from bench.rawsql import raw_heal_all
from bench.report import report_rows, summary_build
from bench.targets import targets_rows
from bench.whatif_phase import whatif_phase
from bench.workers import BenchWorker, OutcomeLog, WorkerGroup
from config.database import database_ensure, server_params
from healing.cycle import healing_cycle_run
from healing.detection import stuck_orders_detect
from healing.dispatch import healings_dispatch as dispatch_healings
from healing.errors import HealingTransientError
from healing.execution import healing_execute
from healing.models import Trigger
from healing.tasks import heal_order, noop

ROOT = Path(__file__).resolve().parents[3]
HEAL_TASK = heal_order.name
NOOP_TASK = noop.name
# Outcomes that end a healing task; RETRY means another delivery follows.
FINAL_STATES = {"SUCCESS", "FAILURE"}


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError
    return number


def _percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile; the samples are thousands, no interpolation needed."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


class PublishTimes:
    """Wall-clock time each healing task left this process (Celery's after_task_publish)."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}

    def __call__(self, sender: Any = None, body: Any = None, **kwargs: Any) -> None:
        if sender != HEAL_TASK:
            return
        args = body[0] if isinstance(body, tuple | list) else body.get("args", ())
        self.sent[str(args[0])] = time.time()

    @contextmanager
    def recording(self) -> Iterator[PublishTimes]:
        after_task_publish.connect(self, weak=False)
        try:
            yield self
        finally:
            after_task_publish.disconnect(self)


class Command(BaseCommand):
    help = "Benchmark detection, fan-out and healing throughput against the measured limits."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--orders", type=_positive, default=1_000_000)
        parser.add_argument("--stuck", type=_positive, default=10_000)
        parser.add_argument("--workers", type=_positive, default=2, help="worker processes")
        parser.add_argument(
            "--concurrency",
            type=_positive,
            default=os.cpu_count() or 2,
            help="pool processes (or threads) per worker (default: CPU count)",
        )
        parser.add_argument(
            "--pool",
            choices=("prefork", "threads"),
            default="prefork",
            help="the pipeline phase's worker pool (CELERY_WORKER_POOL)",
        )
        parser.add_argument("--gateway-latency-ms", type=float, default=100.0)
        parser.add_argument("--latency-sample", type=_positive, default=500)
        parser.add_argument(
            "--latency-threads",
            type=_positive,
            default=20,
            help="thread-pool size per worker in the latency phase (one DB connection each)",
        )
        parser.add_argument("--detect-runs", type=_positive, default=7)
        parser.add_argument(
            "--scales",
            default="0.1,3,10",
            help="detection also at these multiples of --orders, each in its own database "
            "('' to skip)",
        )
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--timeout", type=float, default=900, help="seconds per phase")
        parser.add_argument("--json-out", help="also write every figure (more than the last line)")
        parser.add_argument(
            "--allow-any-database",
            action="store_true",
            help="run even when the database name does not contain 'bench' (it is overwritten)",
        )
        parser.add_argument("--detect-only", action="store_true", help=argparse.SUPPRESS)
        parser.add_argument(
            "--backlog-orders",
            type=_positive,
            default=500_000,
            help="the backlog cycle's data set (its own database, seeded once)",
        )
        parser.add_argument(
            "--backlog-stuck",
            type=_positive,
            default=100_000,
            help="stuck orders the backlog cycle finds (a long outage)",
        )
        parser.add_argument("--backlog-only", action="store_true", help=argparse.SUPPRESS)
        parser.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)

    # --- Entry ------------------------------------------------------------

    def handle(self, *args: Any, **opts: Any) -> None:
        self.opts = opts
        self.db = settings.DATABASES["default"]
        # The engine logs every healing at INFO; here that would bury the
        # progress bars and the table. Quieter also makes the sequential
        # baseline a little faster than it really is: the speedups err low.
        for name in ("healing", "healing.tasks", "notifications"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._preflight(need_redis=not (opts["detect_only"] or opts["backlog_only"]))
        if database_ensure(self.db):
            self.log(f"created database {self.db['NAME']}")
        dataset.migrate()
        # Seeding, shifting a reused data set's clocks and restoring snapshots
        # are statements over millions of rows: no statement timeout for this
        # process's own connection (the workers it starts keep theirs).
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = 0")
        if opts["detect_only"]:
            self._detect_only()
            return
        if opts["backlog_only"]:
            self._backlog_only()
            return
        self.figures: dict[str, Any] = {}
        self.rows: list[tuple[str, str]] = []
        self.work = Path(tempfile.mkdtemp(prefix="bench-healing-"))
        try:
            self._run()
        finally:
            connection.close()
            shutil.rmtree(self.work, ignore_errors=True)
        self._report()

    def log(self, message: str) -> None:
        self.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}")

    def _preflight(self, *, need_redis: bool) -> None:
        missing = (
            "bench_healing needs PostgreSQL and Redis: set DATABASE_URL=postgres://... and "
            "CELERY_BROKER_URL=redis://... (make bench sets both to the local services)"
        )
        if "postgresql" not in self.db["ENGINE"]:
            raise CommandError(f"{missing}; DATABASE_URL is not a PostgreSQL URL")
        params = server_params(self.db)
        try:
            psycopg.connect(dbname="postgres", **params).close()
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CommandError(
                f"{missing}; PostgreSQL at {params['host']}:{params['port']} does not answer "
                f"({first})"
            ) from exc
        if need_redis:
            broker = settings.CELERY_BROKER_URL
            if not broker.startswith(("redis://", "rediss://")):
                raise CommandError(f"{missing}; CELERY_BROKER_URL is not a Redis URL")
            try:
                redis.Redis.from_url(broker, socket_connect_timeout=2).ping()
            except redis.RedisError as exc:
                raise CommandError(f"{missing}; Redis at {broker} does not answer ({exc})") from exc
        if "bench" not in self.db["NAME"] and not self.opts["allow_any_database"]:
            raise CommandError(
                f"bench_healing replaces the data of database {self.db['NAME']!r}: point "
                "DATABASE_URL at a database whose name contains 'bench' "
                "(or pass --allow-any-database)"
            )
        if settings.DEBUG:
            self.log("warning: DEBUG is on; Django keeps every query in memory, figures suffer")

    # --- Detection --------------------------------------------------------

    def _detect(self, runs: int) -> dict[str, float]:
        # One warm-up run (plans, caches), then the measured runs.
        stuck_orders_detect(now=timezone.now())
        times: list[float] = []
        found = 0
        for _ in range(runs):
            started = time.perf_counter()
            found = len(stuck_orders_detect(now=timezone.now()))
            times.append((time.perf_counter() - started) * 1000)
        return {
            "p50_ms": round(statistics.median(times), 2),
            "max_ms": round(max(times), 2),
            "found": found,
        }

    def _detect_only(self) -> None:
        opts = self.opts
        how = dataset.marketplace_prepare(
            orders=opts["orders"],
            stuck=opts["stuck"],
            seed=opts["seed"],
            snapshot=False,
            stdout=self.stderr,
        )
        result = self._detect(opts["detect_runs"])
        self.stdout.write(json.dumps({"orders": opts["orders"], "data": how, **result}))

    def _detect_at(self, orders: int) -> dict[str, Any]:
        """Detection in a database of its own at another size (seeded once, then reused)."""
        stuck = min(self.opts["stuck"], orders)
        return self._sub_command(
            suffix=str(orders),
            args=[
                "--detect-only",
                f"--orders={orders}",
                f"--stuck={stuck}",
                f"--detect-runs={self.opts['detect_runs']}",
            ],
        )

    def _backlog_only(self) -> None:
        """Seed (``--prepare-only``) or run the backlog cycle, in this process
        of its own so its peak RSS is the cycle's."""
        opts = self.opts
        how = dataset.marketplace_prepare(
            orders=opts["orders"],
            stuck=opts["stuck"],
            seed=opts["seed"],
            snapshot=True,
            stdout=self.stderr,
        )
        if opts["prepare_only"]:
            self.stdout.write(json.dumps({"data": how}))
            return
        self.stdout.write(json.dumps({"data": how, **phases.backlog_cycle()}))

    def _sub_command(self, *, suffix: str, args: list[str]) -> dict[str, Any]:
        """``bench_healing`` in another process, on database ``<name>_<suffix>``."""
        db = self.db
        password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
        url = (
            f"postgres://{db.get('USER') or 'postgres'}{password}@{db.get('HOST') or '127.0.0.1'}"
            f":{db.get('PORT') or 5432}/{db['NAME']}_{suffix}"
        )
        command = [sys.executable, "manage.py", "bench_healing", f"--seed={self.opts['seed']}"]
        if self.opts["allow_any_database"]:
            command.append("--allow-any-database")
        done = subprocess.run(  # noqa: S603 - our own interpreter and command
            [*command, *args],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": url},
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise CommandError(f"bench_healing {' '.join(args)} failed (exit {done.returncode})")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def _backlog_at(self) -> dict[str, Any]:
        orders, stuck = self.opts["backlog_orders"], self.opts["backlog_stuck"]
        size = [f"--orders={orders}", f"--stuck={min(stuck, orders)}", "--backlog-only"]
        self._sub_command(suffix="backlog", args=[*size, "--prepare-only"])
        return self._sub_command(suffix="backlog", args=size)

    # --- Phases -----------------------------------------------------------

    def _run(self) -> None:
        opts = self.opts
        orders, stuck = opts["orders"], opts["stuck"]
        if stuck > orders:
            raise CommandError(f"--stuck ({stuck}) cannot exceed --orders ({orders})")
        self.log(f"marketplace: {orders} orders, {stuck} stuck, database {self.db['NAME']}")
        how = dataset.marketplace_prepare(
            orders=orders, stuck=stuck, seed=opts["seed"], snapshot=True, stdout=self.stderr
        )
        self.rows.append(("data set", f"{how} ({orders:,} orders, {stuck:,} stuck)"))
        detected = stuck_orders_detect(now=timezone.now())
        if len(detected) != stuck:
            raise CommandError(f"expected {stuck} stuck orders, detection found {len(detected)}")

        self.log(f"detection: {opts['detect_runs']} runs at {orders:,} orders")
        main = self._detect(opts["detect_runs"])
        self.figures["detect"] = {orders: main}

        connections = opts["workers"] * opts["concurrency"]
        self._phase_pipeline()
        dataset.snapshot_restore()
        self._phase_raw_sql(connections)
        dataset.snapshot_restore()
        self._phase_sequential()
        dataset.snapshot_restore()
        self._phase_latency([item.order_id for item in detected])
        dataset.snapshot_restore()

        self.log("detection with a quarter of the vendors on a calendar (vendor time)")
        self.figures["calendars"] = phases.calendars_detect(
            detect=lambda: self._detect(opts["detect_runs"])
        )
        self.log("what-if replay of the rules over 7 days of history")
        self.figures["whatif"] = whatif_phase(days=7, runs=1)
        self.log(
            f"backlog: one cycle finding {opts['backlog_stuck']:,} stuck orders "
            f"of {opts['backlog_orders']:,} (own database; seeded once, then reused)"
        )
        self.figures["backlog"] = self._backlog_at()

        for scale in [s for s in opts["scales"].split(",") if s.strip()]:
            size = max(int(orders * float(scale)), stuck)
            if size == orders:
                continue
            self.log(f"detection at {size:,} orders (own database; seeded once, then reused)")
            self.figures["detect"][size] = self._detect_at(size)

    def _purge_broker(self) -> None:
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        # The healing queue (and its priority variants) and kombu's unacked
        # bookkeeping: leftovers of an interrupted run would be counted.
        for pattern in ("healing*", "unacked*"):
            keys = list(client.scan_iter(match=pattern))
            if keys:
                client.delete(*keys)

    def _workers(
        self, *, label: str, pool: str, concurrency: int, latency_ms: float
    ) -> WorkerGroup:
        outcome_dir = self.work / f"{label}-outcomes"
        self.outcomes = OutcomeLog(outcome_dir)
        env = {
            "VENDOR_GATEWAY_BACKEND": "simulated",
            "VENDOR_GATEWAY_SIM_LATENCY_MS": str(latency_ms),
            "VENDOR_GATEWAY_SIM_FAILURE_RATE": "0",
            "DATABASE_URL": self._database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        }
        return WorkerGroup(
            [
                BenchWorker(
                    name=f"bench-{label}-{index}-{os.getpid()}",
                    pool=pool,
                    concurrency=concurrency,
                    env=env,
                    outcome_dir=outcome_dir,
                    log_path=self.work / f"{label}-worker-{index}.log",
                )
                for index in range(self.opts["workers"])
            ]
        )

    def _database_url(self) -> str:
        return os.environ.get("DATABASE_URL", "")

    def _wait_finished(self, *, task: str, expected: int, desc: str) -> list[Any]:
        """Block until ``expected`` distinct tasks of ``task`` reached a final state."""
        done: dict[str, Any] = {}
        deadline = time.monotonic() + self.opts["timeout"]
        with tqdm(total=expected, desc=desc, unit="task", file=sys.stderr) as bar:
            while len(done) < expected:
                for row in self.outcomes.poll():
                    if row.task == task and row.state in FINAL_STATES and row.key not in done:
                        done[row.key] = row
                        bar.update(1)
                if len(done) >= expected:
                    break
                if time.monotonic() > deadline:
                    raise CommandError(
                        f"{desc}: only {len(done)} of {expected} finished within "
                        f"{self.opts['timeout']:.0f}s (worker logs in {self.work})"
                    )
                time.sleep(0.1)
        return list(done.values())

    def _cycle(self, dispatch: Callable[[list[tuple[int, str]]], None]) -> tuple[Any, dict]:
        """One healing cycle; the times its dispatch started and finished sending."""
        marks: dict[str, float] = {}

        def timed(pairs: list[tuple[int, str]]) -> None:
            marks["first"] = time.time()
            dispatch(pairs)
            marks["sent"] = time.time()

        marks["start"] = time.time()
        result = healing_cycle_run(trigger=Trigger.CLI, dispatch=timed)
        return result, marks

    def _phase_pipeline(self) -> None:
        opts = self.opts
        stuck = opts["stuck"]
        self._purge_broker()
        self.log(
            f"pipeline: {opts['workers']} workers x {opts['concurrency']} {opts['pool']} "
            "pool, gateway answering at once"
        )
        # No-op baseline first, on the same workers and queue. The queue is
        # filled before the workers start: sending from one process is slower
        # than draining, and the baseline is the drain rate.
        with noop.app.producer_or_acquire() as producer:
            for index in tqdm(range(stuck), desc="queueing no-ops", unit="task", file=sys.stderr):
                noop.apply_async(args=(index,), producer=producer)
        with self._workers(
            label="pipeline", pool=opts["pool"], concurrency=opts["concurrency"], latency_ms=0
        ) as group:
            noops = self._wait_finished(task=NOOP_TASK, expected=stuck, desc="no-op tasks")
            first_noop = min(row.at for row in noops)
            noop_s = max(row.at for row in noops) - first_noop

            with PublishTimes().recording() as published:
                result, marks = self._cycle(dispatch_healings)
                finished = self._wait_finished(
                    task=HEAL_TASK, expected=result.dispatched, desc="healings"
                )
            rss = group.peak_rss_mb()
        last = max(row.at for row in finished)
        heal_s = last - marks["first"]
        to_outcome = [row.at - published.sent[row.key] for row in finished]
        outcomes: dict[str, int] = {}
        for row in finished:
            outcomes[row.outcome or row.state] = outcomes.get(row.outcome or row.state, 0) + 1
        self.figures["pipeline"] = {
            "dispatched": result.dispatched,
            "outcomes": outcomes,
            "cycle_to_sent_s": marks["sent"] - marks["start"],
            "send_only_s": marks["sent"] - marks["first"],
            "heal_s": heal_s,
            "heal_per_s": result.dispatched / heal_s,
            "pipeline_s": last - marks["start"],
            "to_outcome_p50_s": _percentile(to_outcome, 0.5),
            "to_outcome_p95_s": _percentile(to_outcome, 0.95),
            "to_outcome_max_s": max(to_outcome),
            "rss_mb": rss,
            "noop_s": noop_s,
            "noop_per_s": (stuck - 1) / noop_s if noop_s > 0 else float(stuck),
        }

    def _phase_raw_sql(self, connections: int) -> None:
        pairs: list[tuple[int, str]] = []
        self._cycle(pairs.extend)
        self.log(f"raw SQL: {len(pairs)} healings over {connections} psycopg connections")
        params = server_params(self.db)
        params.pop("connect_timeout")
        with tqdm(total=len(pairs), desc="raw SQL", unit="heal", file=sys.stderr) as bar:
            elapsed, outcomes = raw_heal_all(
                conninfo={"dbname": self.db["NAME"], **params},
                healing_ids=[healing_id for healing_id, _ in pairs],
                connections=connections,
                lease_seconds=settings.HEALING_LEASE_SECONDS,
                progress=bar,
            )
        self.figures["raw_sql"] = {
            "healings": len(pairs),
            "outcomes": outcomes,
            "seconds": elapsed,
            "per_s": len(pairs) / elapsed,
            "connections": connections,
        }

    def _sequential(self, *, latency_ms: float, desc: str) -> dict[str, Any]:
        """The seed's way: one process detects, then heals each order in a row."""
        statements = 0
        most = 0
        executed = 0
        outcomes: dict[str, int] = {}

        transactions = 0
        open_transaction = [False]
        # Statements sent in an orders.sql.pipelined block share one round
        # trip (with their transaction's BEGIN); ``batches`` counts those.
        pipelined = batches = begins_pipelined = 0
        in_batch = [False]

        def committed() -> None:
            nonlocal transactions
            transactions += 1
            open_transaction[0] = False

        def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            nonlocal statements, pipelined, batches, begins_pipelined
            statements += 1
            sent_pipelined = pipeline_active(connection)
            if sent_pipelined:
                pipelined += 1
                batches += not in_batch[0]
            in_batch[0] = sent_pipelined
            # One on_commit hook per transaction counts its commit.
            if connection.in_atomic_block and not open_transaction[0]:
                open_transaction[0] = True
                begins_pipelined += sent_pipelined
                transaction.on_commit(committed)
            return execute(sql, params, many, context)

        def inline(pairs: list[tuple[int, str]]) -> None:
            nonlocal executed, most
            for healing_id, token in tqdm(pairs, desc=desc, unit="heal", file=sys.stderr):
                current, status = token, ""
                before = statements
                # A transient error retries at once, as eager mode does.
                for retries in range(3):
                    try:
                        with connection.execute_wrapper(count):
                            status = healing_execute(
                                healing_id=healing_id, token=current, retries=retries
                            ).status
                        break
                    except HealingTransientError as exc:
                        current, status = str(exc.token), "TRANSIENT"
                executed += 1
                most = max(most, statements - before)
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
            "statements": statements,
            "statements_per_heal": statements / executed if executed else 0.0,
            "statements_max": most,
            "transactions": transactions,
            "pipelined_per_heal": pipelined / executed if executed else 0.0,
            # A statement is a round trip, or a pipelined block is one; every
            # transaction adds its COMMIT and, unless it went in a block,
            # psycopg's BEGIN before its first statement.
            "round_trips_per_heal": (
                (statements - pipelined + batches + 2 * transactions - begins_pipelined) / executed
                if executed
                else 0.0
            ),
        }

    def _phase_sequential(self) -> None:
        self.log("sequential baseline: gateway answering at once")
        self.figures["sequential"] = self._sequential(latency_ms=0, desc="sequential")

    def _phase_latency(self, stuck_ids: list[int]) -> None:
        opts = self.opts
        latency = opts["gateway_latency_ms"]
        size = min(opts["latency_sample"], len(stuck_ids))
        step = len(stuck_ids) / size
        sample = {stuck_ids[int(i * step)] for i in range(size)}
        others = [order_id for order_id in stuck_ids if order_id not in sample]

        dataset.orders_unstick(order_ids=others)
        self.log(f"sequential baseline: {size} orders, {latency:g} ms per gateway call")
        sequential = self._sequential(latency_ms=latency, desc="sequential+latency")
        dataset.snapshot_restore()

        dataset.orders_unstick(order_ids=others)
        self._purge_broker()
        threads = opts["latency_threads"]
        self.log(
            f"pipeline: {size} orders, {opts['workers']} workers x {threads} threads, "
            f"{latency:g} ms per gateway call"
        )
        with self._workers(
            label="threads", pool="threads", concurrency=threads, latency_ms=latency
        ):
            result, marks = self._cycle(dispatch_healings)
            finished = self._wait_finished(
                task=HEAL_TASK, expected=result.dispatched, desc="healings+latency"
            )
        pipeline_s = max(row.at for row in finished) - marks["start"]
        self.figures["latency"] = {
            "sample": size,
            "latency_ms": latency,
            "threads": threads,
            "sequential": sequential,
            "pipeline_s": pipeline_s,
            "speedup": sequential["seconds"] / pipeline_s,
        }

    # --- Report -----------------------------------------------------------

    def _report(self) -> None:
        summary = summary_build(figures=self.figures, opts=self.opts)
        f = self.figures
        rows = [*self.rows, *report_rows(figures=f, summary=summary, opts=self.opts)]
        width = max(len(label) for label, _ in rows)
        self.stdout.write("")
        for label, value in rows:
            self.stdout.write(f"{label.ljust(width)}  {value}")
        self.stdout.write("")
        for line in targets_rows(summary):
            self.stdout.write(line)
        if self.opts["json_out"]:
            Path(self.opts["json_out"]).write_text(
                json.dumps({"summary": summary, "figures": f}, indent=2, default=str)
            )
        self.stdout.write(json.dumps(summary))
