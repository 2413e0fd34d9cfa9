"""Benchmark phases of issue 15 and 18 kept out of the command's module:
detection with vendor calendars, and a long outage's backlog cycle.

Each returns plain figures; ``bench_healing`` prints them and their targets.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from typing import Any

from django.utils import timezone

from bench import dataset
from healing.cycle import healing_cycle_run
from healing.models import Trigger
from orders.models import Order, Vendor
from orders.vendor_time import due_at_recompute

# A calendar that is open all day, every day, with one holiday far ahead: it
# gives the vendor's open orders a due time (vendor time) without changing
# which of them are stuck, so the two detections compare like for like.
ALWAYS_OPEN_CALENDAR = {"holidays": ["2099-12-31"]}


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
