"""CSV export of notifications (issue 19), and the streamed CSV writer it shares.

``csv_lines`` writes one line at a time (a generator for a
StreamingHttpResponse), so an export holds one chunk of rows in memory, not
the table; a cell a spreadsheet would run as a formula (``=``, ``+``, ``-``,
``@``) is prefixed with a quote. healing.export reuses it for healings (and
the API's notification export); the admin's "Export as CSV" action uses it
here, since notifications never import healing.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from notifications.models import AdminNotification

CHUNK = 2_000

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


def notifications_csv(rows: QuerySet[AdminNotification]) -> Iterator[str]:
    values = rows.values_list(*NOTIFICATION_COLUMNS).iterator(chunk_size=CHUNK)
    return csv_lines(columns=NOTIFICATION_COLUMNS, rows=values)
