"""CSV export of healings and notifications (issue 19): streamed, filtered as the lists.

Rows are read with one streamed query (``iterator``) and written as they come,
so an export of a year of healings holds one chunk in memory, not the table.
A cell that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``)
is prefixed with a quote.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from healing.models import HealingAction
from notifications.models import AdminNotification

CHUNK = 2_000

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
NOTIFICATION_COLUMNS = (
    "id",
    "notification_type",
    "severity",
    "order_id",
    "order__number",
    "healing_action_id",
    "title",
    "message",
    "created_at",
    "last_occurred_at",
    "acknowledged_at",
    "acknowledged_by__username",
    "resolved_at",
    "resolved_by__username",
    "resolution_note",
)


class _Echo:
    """A file-like object whose write returns the line: csv.writer into a generator."""

    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def csv_lines(*, columns: Iterable[str], rows: Iterable[tuple[Any, ...]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow([column.replace("__", "_") for column in columns])
    for row in rows:
        yield writer.writerow([_cell(value) for value in row])


def healings_csv(rows: QuerySet[HealingAction]) -> Iterator[str]:
    values = rows.values_list(*HEALING_COLUMNS).iterator(chunk_size=CHUNK)
    return csv_lines(columns=HEALING_COLUMNS, rows=values)


def notifications_csv(rows: QuerySet[AdminNotification]) -> Iterator[str]:
    values = rows.values_list(*NOTIFICATION_COLUMNS).iterator(chunk_size=CHUNK)
    return csv_lines(columns=NOTIFICATION_COLUMNS, rows=values)
