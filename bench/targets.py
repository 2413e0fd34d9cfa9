"""The benchmark's targets (issue 15, 18, 19), printed next to the figures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# (key, target as people read it, met?) — the figure against the others of the same run.
TARGETS: list[tuple[str, str, Callable[[Any, dict[str, Any]], bool]]] = [
    ("heal_per_s", ">= 300", lambda v, s: v >= 300),
    ("ratio_vs_noop_task", ">= 0.4", lambda v, s: v >= 0.4),
    ("ratio_vs_raw_sql", ">= 0.5", lambda v, s: v >= 0.5),
    ("pipeline_vs_sequential", ">= 2", lambda v, s: v >= 2),
    ("speedup_vs_sequential_latency", ">= 10", lambda v, s: v >= 10),
    ("detect_ms_p50", "<= 50 ms", lambda v, s: v <= 50),
    ("detect_ms_10m", "<= 2 x detect_ms_p50", lambda v, s: v <= 2 * s["detect_ms_p50"]),
    (
        "detect_ms_calendars",
        "<= 1.5 x detect_ms_p50",
        lambda v, s: v <= 1.5 * s["detect_ms_p50"],
    ),
    ("dispatch_s", "<= 10 s", lambda v, s: v <= 10),
    ("statements_per_heal", "<= 8", lambda v, s: v <= 8),
    ("worker_rss_mb_max", "<= 150 MB", lambda v, s: v <= 150),
    ("whatif_7d_s", "<= 10 s", lambda v, s: v <= 10),
]


def targets_rows(summary: dict[str, Any]) -> list[str]:
    """A table: figure, value, target, met / not met / not measured."""
    lines = [f"{'target':<30} {'figure':>10}  {'wanted':<24} met?"]
    for key, wanted, met in TARGETS:
        value = summary.get(key)
        verdict = "not measured" if value is None else ("met" if met(value, summary) else "NOT MET")
        shown = "-" if value is None else f"{value:g}"
        lines.append(f"{key:<30} {shown:>10}  {wanted:<24} {verdict}")
    return lines
