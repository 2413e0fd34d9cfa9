"""Reads that summarise healings for people and scrapers (docs/DECISIONS.md "Success").

- ``measures``: the shared building blocks (window, recovery time, percentiles,
  outcome counts);
- ``kpis``: the one ``success_rate`` and the one KPI target table;
- ``statistics``: the per-day / per-vendor / per-issue rows and the "stuck
  right now" snapshot (stuck as ``healing.detection`` defines it);
- ``rollup``: the daily ``healing_metrics`` roll-up;
- ``prometheus``: the ``/metrics`` collector and ``metrics_render``.
"""
