from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from healing.detection import stuck_orders_detect


class Command(BaseCommand):
    help = "List stuck orders: order, issue, stuck minutes, recommended action, attempts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=None, help="Show at most N orders.")

    def handle(self, *args: Any, limit: int | None, **options: Any) -> None:
        rows = stuck_orders_detect(limit=limit)
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
        self.stdout.write(f"{len(rows)} stuck order(s)")
