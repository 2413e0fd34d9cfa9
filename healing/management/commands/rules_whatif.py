"""``rules_whatif``: replay the window's history against today's rules and proposed ones.

Prints a side-by-side table and, as its last line, the whole report as JSON.
Changes nothing.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.cli import int_in_range
from healing.models import RecoveryAction
from healing.whatif import WhatIfInvalid, rules_whatif

DAYS_MAX = 366


def threshold_parse(text: str) -> tuple[str, int]:
    """``PENDING=20`` (an argparse ``type``)."""
    status, _, minutes = text.partition("=")
    if not status or not minutes.isdigit() or int(minutes) < 1:
        raise argparse.ArgumentTypeError(
            f"expected STATUS=MINUTES such as PENDING=20, got {text!r}"
        )
    return status.strip().upper(), int(minutes)


def ladder_parse(text: str) -> tuple[str, list[str]]:
    """``ACCEPTED=REASSIGN_VENDOR,MANUAL_INTERVENTION`` (an argparse ``type``)."""
    status, _, steps = text.partition("=")
    ladder = [step.strip().upper() for step in steps.split(",") if step.strip()]
    if not status or not ladder:
        raise argparse.ArgumentTypeError(
            f"expected STATUS=ACTION,ACTION such as ACCEPTED=REASSIGN_VENDOR, got {text!r}"
        )
    unknown = [step for step in ladder if step not in RecoveryAction.values]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown action {', '.join(unknown)}; use {', '.join(RecoveryAction.values)}"
        )
    return status.strip().upper(), ladder


class Command(BaseCommand):
    help = (
        "What-if: replay the orders' status history over the last days against today's rules "
        "and proposed thresholds or ladders. Changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int_in_range(name="a number of days", minimum=1, maximum=DAYS_MAX),
            default=7,
        )
        parser.add_argument(
            "--set",
            dest="thresholds",
            type=threshold_parse,
            action="append",
            default=[],
            metavar="STATUS=MINUTES",
        )
        parser.add_argument(
            "--ladder",
            dest="ladders",
            type=ladder_parse,
            action="append",
            default=[],
            metavar="STATUS=ACTION,...",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = rules_whatif(
                days=options["days"],
                thresholds=dict(options["thresholds"]),
                ladders=dict(options["ladders"]),
            )
        except WhatIfInvalid as exc:
            raise CommandError(str(exc)) from None
        self._table_write(report)
        self.stdout.write(json.dumps(report, sort_keys=True))

    def _table_write(self, report: dict[str, Any]) -> None:
        current, proposed = report["current"], report["proposed"]
        lines: list[tuple[str, object, object]] = [
            ("flagged orders", current["flagged_orders"], proposed["flagged_orders"]),
            ("flagged episodes", current["flagged_episodes"], proposed["flagged_episodes"]),
            *(
                (f"  {action}", current["actions"][action], proposed["actions"][action])
                for action in RecoveryAction.values
            ),
            ("escalations to a person", current["escalations"], proposed["escalations"]),
            (
                "recovered by itself first",
                current["self_recovered_before_threshold"],
                proposed["self_recovered_before_threshold"],
            ),
        ]
        window = report["window"]
        self.stdout.write(
            f"{window['days']} day(s) of history, {report['history_rows']} status change(s)"
        )
        self.stdout.write(f"{'':<28}{'current':>10}{'proposed':>10}")
        for label, now, new in lines:
            self.stdout.write(f"{label:<28}{now!s:>10}{new!s:>10}")
        comparison = report["comparison"]
        self.stdout.write(
            f"flagged by both {comparison['flagged_by_both']}: proposed shift "
            f"mean {comparison['shift_minutes_mean']} min, "
            f"p95 {comparison['shift_minutes_p95']} min; "
            f"only current {comparison['only_current']}, only proposed "
            f"{comparison['only_proposed']}, of which recovered by itself "
            f"{comparison['self_recovered_between_thresholds']}"
        )
