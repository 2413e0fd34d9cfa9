from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from config.cli import closed_pipe_ignored, positive_int
from healing.detection import StuckOrder, stuck_orders_detect


class Command(BaseCommand):
    help = "List stuck orders: order, issue, stuck minutes, recommended action, attempts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--limit", type=positive_int, default=None, help="Show at most N orders (N >= 1)."
        )

    def handle(self, *args: Any, limit: int | None, **options: Any) -> None:
        # Every stuck order is detected so the footer can say how many there
        # are; --limit only trims what is printed.
        rows = stuck_orders_detect()
        shown = rows if limit is None else rows[:limit]
        with closed_pipe_ignored(self.stdout):
            self._table_write(shown)
            if len(shown) < len(rows):
                self.stdout.write(f"showing {len(shown)} of {len(rows)} stuck order(s)")
            else:
                self.stdout.write(f"{len(rows)} stuck order(s)")

    def _table_write(self, rows: list[StuckOrder]) -> None:
        header = (
            f"{'order':>10}  {'number':<24} {'issue':<17} {'stuck min':>9}  "
            f"{'recommended':<20} {'attempts':>8}"
        )
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for row in rows:
            self.stdout.write(
                f"{row.order_id:>10}  {row.order_number:<24} {row.issue_type:<17} "
                f"{row.stuck_minutes:>9}  {row.recommended_action:<20} {row.attempts:>8}"
            )
