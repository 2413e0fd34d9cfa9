"""Recompute healing_metrics from healing_actions for a range of days (invariant 9)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.cli import days_back
from healing.reports.rollup import metrics_rollup


class Command(BaseCommand):
    help = (
        "Recompute the daily healing_metrics rows of the last N days (today included) "
        "from healing_actions, healing_cycles and admin_notifications."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=days_back,
            default=1,
            help="How many days back, today included (default 1, at most 36,500).",
        )

    def handle(self, *args: Any, days: int, **options: Any) -> None:
        if days < 1:
            raise CommandError("--days must be at least 1")
        rows = metrics_rollup(days=days)
        for row in rows:
            rate = "-" if row.healing_success_rate is None else f"{row.healing_success_rate}%"
            self.stdout.write(
                f"{row.metric_date}: detected={row.total_stuck_orders_detected} "
                f"success={row.successful_recoveries} failed={row.failed_recoveries} "
                f"skipped={row.skipped_recoveries} manual={row.manual_interventions} "
                f"success_rate={rate}"
            )
        self.stdout.write(self.style.SUCCESS(f"Rebuilt {len(rows)} day(s) of healing_metrics."))
