"""CSV export of healings and notifications (issue 19): streamed, filtered as the lists.

Rows are read with one streamed query (``iterator``) and written as they come,
so an export of a year of healings holds one chunk in memory, not the table.
A cell that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``)
is prefixed with a quote (``notifications.export.csv_lines``).
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import QuerySet

from healing.models import HealingAction

# The streamed writer and the notification columns live with notifications
# (its admin exports too, and notifications never imports healing).
from notifications.export import CHUNK, NOTIFICATION_COLUMNS, csv_lines, notifications_csv

__all__ = ["HEALING_COLUMNS", "NOTIFICATION_COLUMNS", "healings_csv", "notifications_csv"]

HEALING_COLUMNS = (
    "id",
    "order_id",
    "order__number",
    "cycle_id",
    "issue_type",
    "trigger",
    "detected_status",
    "issue_detected_at",
    "attempt_number",
    "recovery_action",
    "recovery_status",
    "skip_reason",
    "recovery_attempted_at",
    "completed_at",
    "recovery_duration_seconds",
    "resulting_status",
    "previous_vendor_id",
    "new_vendor_id",
    "retry_count",
    "error_message",
    "requested_by__username",
    "resolved_at",
    "resolved_by__username",
)


def healings_csv(rows: QuerySet[HealingAction]) -> Iterator[str]:
    values = rows.values_list(*HEALING_COLUMNS).iterator(chunk_size=CHUNK)
    return csv_lines(columns=HEALING_COLUMNS, rows=values)
