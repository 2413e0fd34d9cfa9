"""The benchmark's what-if phase (issue 19): ``whatif_7d_s``.

Times ``healing.whatif.rules_whatif`` — the code behind ``manage.py
rules_whatif`` and ``POST /rules/what-if`` — over ``days`` days of the data
set's status history, against today's rules and a proposed change (the
issue's example, PENDING at 20 minutes, by default). The window ends at the
newest history row, not at the wall clock: a reused data set's history was
written when it was seeded, and a window ending "now" could hold none of it.
Nothing is written. bench_healing calls it after the data set is ready.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Max

from healing.whatif import rules_whatif
from orders.models import OrderStatusChange

DEFAULT_PROPOSAL: Mapping[str, int] = {"PENDING": 20}
# One microsecond: the newest row falls inside the half-open window.
_EPSILON = timedelta(microseconds=1)


def whatif_phase(
    *,
    days: int = 7,
    runs: int = 1,
    thresholds: Mapping[str, int] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Median seconds of ``runs`` replays over ``days`` days, and what they replayed.

    Returns ``{"whatif_7d_s": ..., "whatif_history_rows": ..., "whatif_flagged_current":
    ..., "whatif_flagged_proposed": ...}`` (the key says 7d whatever ``days`` is
    only when ``days`` is 7; otherwise ``whatif_<days>d_s``).
    """
    if days < 1 or runs < 1:
        raise ValueError("days and runs are at least 1")
    end = now or OrderStatusChange.objects.aggregate(last=Max("created_at"))["last"]
    if end is None:
        raise ValueError("the data set has no status history: seed it first")
    proposal = dict(DEFAULT_PROPOSAL if thresholds is None else thresholds)
    times: list[float] = []
    report: dict[str, Any] = {}
    for _ in range(runs):
        started = time.perf_counter()
        # The window is [end - days, end): the newest row itself is one past it.
        report = rules_whatif(days=days, thresholds=proposal, now=end + _EPSILON)
        times.append(time.perf_counter() - started)
    return {
        f"whatif_{days}d_s": round(statistics.median(times), 3),
        "whatif_history_rows": report["history_rows"],
        "whatif_flagged_current": report["current"]["flagged_orders"],
        "whatif_flagged_proposed": report["proposed"]["flagged_orders"],
    }
