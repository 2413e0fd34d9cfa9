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
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.utils import timezone
from tqdm import tqdm

from bench import dataset, phases
from bench.preflight import services_check
from bench.report import report_rows, summary_build
from bench.sequential import raw_sql_measure, sequential_cycle_run
from bench.targets import targets_rows
from bench.whatif_phase import whatif_phase
from bench.workers import BenchWorker, OutcomeLog, PublishTimes, WorkerGroup, broker_purge
from config.database import database_ensure
from healing.detection import stuck_orders_detect
from healing.dispatch import healings_dispatch as dispatch_healings
from healing.tasks import heal_order, noop

HEAL_TASK = heal_order.name
NOOP_TASK = noop.name
# Outcomes that end a healing task; RETRY means another delivery follows.
FINAL_STATES = {"SUCCESS", "FAILURE"}


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError
    return number


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
        services_check(
            db=self.db,
            broker=settings.CELERY_BROKER_URL,
            need_redis=not (opts["detect_only"] or opts["backlog_only"]),
            allow_any_database=opts["allow_any_database"],
        )
        if settings.DEBUG:
            self.log("warning: DEBUG is on; Django keeps every query in memory, figures suffer")
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

    # --- Detection --------------------------------------------------------

    def _detect_only(self) -> None:
        opts = self.opts
        how = dataset.marketplace_prepare(
            orders=opts["orders"],
            stuck=opts["stuck"],
            seed=opts["seed"],
            snapshot=False,
            stdout=self.stderr,
        )
        result = phases.detection_time(opts["detect_runs"])
        self.stdout.write(json.dumps({"orders": opts["orders"], "data": how, **result}))

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
        main = phases.detection_time(opts["detect_runs"])
        self.figures["detect"] = {orders: main}

        connections = opts["workers"] * opts["concurrency"]
        self._phase_pipeline()
        dataset.snapshot_restore()
        self.figures["raw_sql"] = raw_sql_measure(db=self.db, connections=connections, log=self.log)
        dataset.snapshot_restore()
        self._phase_sequential()
        dataset.snapshot_restore()
        self._phase_latency([item.order_id for item in detected])
        dataset.snapshot_restore()

        self.log("detection with a quarter of the vendors on a calendar (vendor time)")
        self.figures["calendars"] = phases.calendars_detect(
            detect=lambda: phases.detection_time(opts["detect_runs"])
        )
        self.log("what-if replay of the rules over 7 days of history")
        self.figures["whatif"] = whatif_phase(days=7, runs=1)
        self.log(
            f"backlog: one cycle finding {opts['backlog_stuck']:,} stuck orders "
            f"of {opts['backlog_orders']:,} (own database; seeded once, then reused)"
        )
        self.figures["backlog"] = phases.backlog_measure(db=self.db, opts=opts)

        for scale in [s for s in opts["scales"].split(",") if s.strip()]:
            size = max(int(orders * float(scale)), stuck)
            if size == orders:
                continue
            self.log(f"detection at {size:,} orders (own database; seeded once, then reused)")
            self.figures["detect"][size] = phases.scale_detect(db=self.db, opts=opts, orders=size)

    def _workers(
        self, *, label: str, pool: str, concurrency: int, latency_ms: float
    ) -> WorkerGroup:
        outcome_dir = self.work / f"{label}-outcomes"
        self.outcomes = OutcomeLog(outcome_dir)
        env = {
            "VENDOR_GATEWAY_BACKEND": "simulated",
            "VENDOR_GATEWAY_SIM_LATENCY_MS": str(latency_ms),
            "VENDOR_GATEWAY_SIM_FAILURE_RATE": "0",
            "DATABASE_URL": os.environ.get("DATABASE_URL", ""),
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

    def _phase_pipeline(self) -> None:
        opts = self.opts
        stuck = opts["stuck"]
        broker_purge(settings.CELERY_BROKER_URL)
        self.log(
            f"pipeline: {opts['workers']} workers x {opts['concurrency']} {opts['pool']} "
            f"pool, up to {settings.HEALING_TASK_BATCH} healings a task, gateway answering at once"
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

            with PublishTimes(task=HEAL_TASK).recording() as published:
                result, marks = phases.cycle_timed(dispatch_healings)
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
            "to_outcome_p50_s": phases.percentile(to_outcome, 0.5),
            "to_outcome_p95_s": phases.percentile(to_outcome, 0.95),
            "to_outcome_max_s": max(to_outcome),
            "rss_mb": rss,
            "noop_s": noop_s,
            "noop_per_s": (stuck - 1) / noop_s if noop_s > 0 else float(stuck),
        }

    def _phase_sequential(self) -> None:
        self.log("sequential baseline: gateway answering at once")
        self.figures["sequential"] = sequential_cycle_run(latency_ms=0, desc="sequential")

    def _phase_latency(self, stuck_ids: list[int]) -> None:
        opts = self.opts
        latency = opts["gateway_latency_ms"]
        size = min(opts["latency_sample"], len(stuck_ids))
        step = len(stuck_ids) / size
        sample = {stuck_ids[int(i * step)] for i in range(size)}
        others = [order_id for order_id in stuck_ids if order_id not in sample]

        dataset.orders_unstick(order_ids=others)
        self.log(f"sequential baseline: {size} orders, {latency:g} ms per gateway call")
        sequential = sequential_cycle_run(latency_ms=latency, desc="sequential+latency")
        dataset.snapshot_restore()

        dataset.orders_unstick(order_ids=others)
        broker_purge(settings.CELERY_BROKER_URL)
        threads = opts["latency_threads"]
        self.log(
            f"pipeline: {size} orders, {opts['workers']} workers x {threads} threads, "
            f"{latency:g} ms per gateway call"
        )
        with self._workers(
            label="threads", pool="threads", concurrency=threads, latency_ms=latency
        ):
            result, marks = phases.cycle_timed(dispatch_healings)
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
