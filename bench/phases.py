"""Benchmark phases kept out of the command's module: detection timing (at
this size, with vendor calendars, at other sizes in databases of their own),
a timed healing cycle, and a long outage's backlog cycle.

Each returns plain figures; ``bench_healing`` prints them and their targets.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from django.core.management.base import CommandError
from django.utils import timezone

from bench import dataset
from bench.workers import ROOT
from healing.cycle import CycleResult, healing_cycle_run
from healing.detection import stuck_orders_detect
from healing.models import Trigger
from orders.models import Order, Vendor
from orders.vendor_time import due_at_recompute

# A calendar that is open all day, every day, with one holiday far ahead: it
# gives the vendor's open orders a due time (vendor time) without changing
# which of them are stuck, so the two detections compare like for like.
ALWAYS_OPEN_CALENDAR = {"holidays": ["2099-12-31"]}


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile; the samples are thousands, no interpolation needed."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def detection_time(runs: int) -> dict[str, float]:
    """Detection's median and worst time over ``runs``, after one warm-up run
    (plans, caches) that is not counted."""
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


def cycle_timed(
    dispatch: Callable[[list[tuple[int, str]]], None],
) -> tuple[CycleResult, dict[str, float]]:
    """One healing cycle; the times it started (``start``) and its dispatch
    started (``first``) and finished (``sent``) sending, wall clock, so they
    compare with the times workers log."""
    marks: dict[str, float] = {}

    def timed(pairs: list[tuple[int, str]]) -> None:
        marks["first"] = time.time()
        dispatch(pairs)
        marks["sent"] = time.time()

    marks["start"] = time.time()
    result = healing_cycle_run(trigger=Trigger.CLI, dispatch=timed)
    return result, marks


def calendars_detect(
    *, detect: Callable[[], dict[str, float]], share: float = 0.25
) -> dict[str, Any]:
    """Detection when ``share`` of the vendors have a calendar (issue 18).

    Their open orders get a due time in bulk (``due_at_recompute``, as a
    calendar change does), detection runs, and the calendars are taken off
    again (due times cleared), leaving the data set as it was.

    The orders table is vacuumed after each bulk rewrite, as after seeding
    and after a reused data set's clocks move: the plain figure is measured
    on all-visible pages, and so is this one. Right after a rewrite, before
    vacuum, detection's index-only scans visit the table for every rewritten
    order (docs/BENCHMARK.md, "Detection at 1M and 10M orders").
    """
    vendor_ids = list(Vendor.objects.order_by("id").values_list("id", flat=True))
    chosen = vendor_ids[:: max(1, round(1 / share))] if share > 0 else []
    started = time.perf_counter()
    Vendor.objects.filter(pk__in=chosen).update(**ALWAYS_OPEN_CALENDAR)
    written = due_at_recompute(vendor_ids=chosen)
    recompute_s = time.perf_counter() - started
    try:
        dataset.vacuum_analyze("orders")
        with_due = Order.objects.filter(due_at__isnull=False).count()
        result = detect()
    finally:
        Vendor.objects.filter(pk__in=chosen).update(holidays=[])
        due_at_recompute(vendor_ids=chosen)
        dataset.vacuum_analyze("orders")
    return {
        **result,
        "vendors_with_calendar": len(chosen),
        "orders_with_due_at": with_due,
        "recompute_s": round(recompute_s, 2),
        "recomputed": written,
    }


def backlog_cycle() -> dict[str, Any]:
    """One cycle over every stuck order of the current data set, tasks not
    sent (a long outage's backlog: detection and row creation alone).

    Run in a process of its own, so its peak resident set (``ru_maxrss``) is
    the cycle's, not the benchmark's.
    """
    sent: list[int] = []
    started = time.perf_counter()
    result = healing_cycle_run(
        trigger=Trigger.CLI, now=timezone.now(), dispatch=lambda pairs: sent.append(len(pairs))
    )
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: kilobytes
    return {
        "detected": result.detected,
        "dispatched": sum(sent),
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_kb / 1024, 1),
    }


def subcommand_run(
    *, db: Mapping[str, Any], opts: dict[str, Any], suffix: str, args: list[str]
) -> dict[str, Any]:
    """``bench_healing`` in another process, on database ``<name>_<suffix>``:
    a data set of another size must not replace this run's, and a process of
    its own measures its own peak RSS. Returns its JSON last line."""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    url = (
        f"postgres://{db.get('USER') or 'postgres'}{password}@{db.get('HOST') or '127.0.0.1'}"
        f":{db.get('PORT') or 5432}/{db['NAME']}_{suffix}"
    )
    command = [sys.executable, "manage.py", "bench_healing", f"--seed={opts['seed']}"]
    if opts["allow_any_database"]:
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
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def scale_detect(*, db: Mapping[str, Any], opts: dict[str, Any], orders: int) -> dict[str, Any]:
    """Detection in a database of its own at another size (seeded once, then
    reused), with the same stuck count where the size allows."""
    stuck = min(opts["stuck"], orders)
    return subcommand_run(
        db=db,
        opts=opts,
        suffix=str(orders),
        args=[
            "--detect-only",
            f"--orders={orders}",
            f"--stuck={stuck}",
            f"--detect-runs={opts['detect_runs']}",
        ],
    )


def backlog_measure(*, db: Mapping[str, Any], opts: dict[str, Any]) -> dict[str, Any]:
    """``backlog_cycle`` on the backlog data set, in its own database: seeded
    by one process first, so the measuring process's peak RSS is the cycle's
    and not the seeding's."""
    orders, stuck = opts["backlog_orders"], opts["backlog_stuck"]
    size = [f"--orders={orders}", f"--stuck={min(stuck, orders)}", "--backlog-only"]
    subcommand_run(db=db, opts=opts, suffix="backlog", args=[*size, "--prepare-only"])
    return subcommand_run(db=db, opts=opts, suffix="backlog", args=size)
