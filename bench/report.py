"""The benchmark's JSON line and table rows, from one run's figures (``bench_healing``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

JSON_KEYS = [
    "detect_ms_p50",
    "detect_ms_max",
    "detect_ms_3m",
    "dispatch_s",
    "heal_per_s",
    "raw_sql_per_s",
    "ratio_vs_raw_sql",
    "noop_task_per_s",
    "ratio_vs_noop_task",
    "sequential_s",
    "pipeline_s",
    "speedup_vs_sequential",
    "speedup_vs_sequential_latency",
    "statements_per_heal",
    "time_to_heal_p95_s",
    "worker_rss_mb_max",
    "pipeline_vs_sequential",
    "detect_ms_10m",
    "detect_ms_calendars",
    "cycle_100k_s",
    "cycle_100k_rss_mb",
    "pg_round_trips_per_heal",
    "whatif_7d_s",
    "orders",
    "stuck",
    "workers",
    "concurrency",
    "pool",
    "task_batch",
]


def detect_at_scale(detect: dict[int, dict[str, Any]], size: int) -> float | None:
    """The detection median at ``size`` orders, if that scale ran."""
    found = detect.get(size)
    return found["p50_ms"] if found else None


def summary_build(*, figures: dict[str, Any], opts: dict[str, Any]) -> dict[str, Any]:
    """The JSON line: every key of JSON_KEYS, from one run's figures."""
    f = figures
    orders = opts["orders"]
    main = f["detect"][orders]
    pipeline, raw, seq, lat = f["pipeline"], f["raw_sql"], f["sequential"], f["latency"]
    rss = pipeline["rss_mb"]
    summary = {
        "detect_ms_p50": main["p50_ms"],
        "detect_ms_max": main["max_ms"],
        "detect_ms_3m": detect_at_scale(f["detect"], orders * 3),
        "dispatch_s": round(pipeline["cycle_to_sent_s"], 3),
        "heal_per_s": round(pipeline["heal_per_s"], 1),
        "raw_sql_per_s": round(raw["per_s"], 1),
        "ratio_vs_raw_sql": round(pipeline["heal_per_s"] / raw["per_s"], 3),
        "noop_task_per_s": round(pipeline["noop_per_s"], 1),
        "ratio_vs_noop_task": round(pipeline["heal_per_s"] / pipeline["noop_per_s"], 3),
        "sequential_s": round(seq["seconds"], 2),
        "pipeline_s": round(pipeline["pipeline_s"], 2),
        "speedup_vs_sequential": round(seq["seconds"] / pipeline["pipeline_s"], 2),
        "speedup_vs_sequential_latency": round(lat["speedup"], 2),
        "statements_per_heal": round(seq["statements_per_heal"], 2),
        "time_to_heal_p95_s": round(pipeline["to_outcome_p95_s"], 3),
        "worker_rss_mb_max": round(max(rss.values()), 1) if rss else None,
        "pipeline_vs_sequential": round(seq["seconds"] / pipeline["pipeline_s"], 2),
        "detect_ms_10m": detect_at_scale(f["detect"], orders * 10),
        "detect_ms_calendars": f["calendars"]["p50_ms"],
        "cycle_100k_s": f["backlog"]["seconds"],
        "cycle_100k_rss_mb": f["backlog"]["peak_rss_mb"],
        "pg_round_trips_per_heal": round(seq["round_trips_per_heal"], 2),
        "whatif_7d_s": f["whatif"]["whatif_7d_s"],
        "orders": orders,
        "stuck": opts["stuck"],
        "workers": opts["workers"],
        "concurrency": opts["concurrency"],
        "pool": opts["pool"],
        # Healings a heal task carries at most (HEALING_TASK_BATCH, read by
        # the workers and the cycle from the same environment).
        "task_batch": settings.HEALING_TASK_BATCH,
    }
    assert list(summary) == JSON_KEYS
    return summary


def report_rows(
    *, figures: dict[str, Any], summary: dict[str, Any], opts: dict[str, Any]
) -> list[tuple[str, str]]:
    """The table's (label, value) rows, after the data-set rows."""
    f = figures
    pipeline, raw, seq, lat = f["pipeline"], f["raw_sql"], f["sequential"], f["latency"]
    rows: list[tuple[str, str]] = []
    for size, d in sorted(f["detect"].items()):
        rows.append(
            (
                f"detection at {size:,} orders",
                f"p50 {d['p50_ms']:.1f} ms, max {d['max_ms']:.1f} ms ({d['found']:,} stuck)",
            )
        )
    rows += [
        (
            "fan-out (cycle start -> all sent)",
            f"{pipeline['cycle_to_sent_s']:.2f} s "
            f"(sending alone {pipeline['send_only_s']:.2f} s, "
            f"{pipeline['dispatched']:,} tasks)",
        ),
        (
            "healing, real workers",
            f"{pipeline['heal_per_s']:.0f}/s ({pipeline['dispatched']:,} in "
            f"{pipeline['heal_s']:.1f} s) {pipeline['outcomes']}",
        ),
        (
            "dispatch -> outcome",
            f"p50 {pipeline['to_outcome_p50_s']:.2f} s, p95 "
            f"{pipeline['to_outcome_p95_s']:.2f} s, max {pipeline['to_outcome_max_s']:.2f} s",
        ),
        (
            "raw SQL, same transaction",
            f"{raw['per_s']:.0f}/s over {raw['connections']} connections -> "
            f"ratio {summary['ratio_vs_raw_sql']:.2f}",
        ),
        (
            "no-op task, same workers",
            f"{pipeline['noop_per_s']:.0f}/s -> ratio {summary['ratio_vs_noop_task']:.2f}",
        ),
        (
            "sequential cycle, no latency",
            f"{seq['seconds']:.1f} s vs pipeline {pipeline['pipeline_s']:.1f} s -> "
            f"x{summary['speedup_vs_sequential']:.1f}",
        ),
        (
            f"sequential, {lat['latency_ms']:g} ms gateway, {lat['sample']} orders",
            f"{lat['sequential']['seconds']:.1f} s vs pipeline ({lat['threads']} threads x "
            f"{opts['workers']}) {lat['pipeline_s']:.1f} s -> x{lat['speedup']:.1f}",
        ),
        (
            "statements per healing",
            f"{seq['statements_per_heal']:.2f} on average, {seq['statements_max']} at most "
            f"({seq['statements']:,} for {seq['healings']:,}, sequential run)",
        ),
        (
            "peak RSS per worker process",
            ", ".join(f"{mb:.0f}" for mb in sorted(pipeline["rss_mb"].values())) + " MB",
        ),
    ]
    cal, backlog, whatif = f["calendars"], f["backlog"], f["whatif"]
    rows += [
        (
            "detection, 1/4 of vendors on a calendar",
            f"p50 {cal['p50_ms']:.1f} ms ({cal['orders_with_due_at']:,} orders with a due "
            f"time; recompute {cal['recompute_s']:.1f} s)",
        ),
        (
            "backlog cycle (detect + write, no send)",
            f"{backlog['detected']:,} stuck in {backlog['seconds']:.1f} s, "
            f"peak RSS {backlog['peak_rss_mb']:.0f} MB",
        ),
        (
            "what-if replay, 7 days",
            f"{whatif['whatif_7d_s']:.2f} s over {whatif['whatif_history_rows']:,} history rows",
        ),
        (
            "round trips per healing",
            f"{seq['round_trips_per_heal']:.2f} ({seq['statements_per_heal']:.1f} statements, "
            f"{seq.get('pipelined_per_heal', 0.0):.1f} of them pipelined; BEGIN/COMMIT of "
            f"{seq['transactions']:,} transactions)",
        ),
    ]
    return rows
