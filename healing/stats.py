"""Old import path: see ``healing.reports`` (statistics, kpis, measures)."""

from healing.reports.kpis import KPI_TARGETS, KpiTarget, kpi_met, kpis_evaluate  # noqa: F401
from healing.reports.measures import (  # noqa: F401
    PercentileCont,
    SecondsBetween,
    day_bounds,
    outcome_counts,
    percentile,
    recovery_percentiles,
    recovery_seconds,
    window_start,
)
from healing.reports.statistics import (  # noqa: F401
    StuckNow,
    most_common_status,
    statistics_by_issue_type,
    statistics_by_vendor,
    statistics_daily,
    stuck_orders_summary,
)
