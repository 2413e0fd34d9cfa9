"""Old import path: the roll-up is ``healing.reports.rollup``."""

from healing.reports.rollup import (  # noqa: F401
    ROLLUP_FIELDS,
    metrics_compute,
    metrics_rollup,
    metrics_rollup_after_cycle,
    metrics_upsert,
)
