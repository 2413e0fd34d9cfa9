"""Retention: the one deliberate way audit rows leave the database (invariant 13).

``history_prune --older-than 400d [--archive DIR]`` writes each batch to a JSON
Lines archive (fsynced) before it deletes that batch in its own short
transaction, so an interrupted run loses nothing and a rerun carries on: rows
already in the archive are not written twice, only deleted. The triggers of
the audit tables refuse row deletes unless the transaction set
``audit.allow_prune``; this command is the only application code that sets it
(``SET LOCAL`` semantics: ``set_config(..., true)`` ends with the transaction).

The credit ledger is never pruned: a buyer's balance is the sum of its entries.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.utils import timezone

from config.cli import int_in_range
from healing.models import HealingAction, HealingCycle
from notifications.models import AdminNotification
from orders.models import OrderStatusChange, VendorMessage

BATCH_SIZE_MAX = 50_000
_AGE = re.compile(r"^(\d+)([dh])$")


@dataclass(frozen=True)
class Pruned:
    """A table's rows, oldest-first, with the column that dates them."""

    model: type[models.Model]
    dated_by: str


# Children before parents: a notification points at a healing, a healing at a cycle.
PRUNED: tuple[Pruned, ...] = (
    Pruned(AdminNotification, "created_at"),
    Pruned(HealingAction, "created_at"),
    Pruned(HealingCycle, "started_at"),
    Pruned(VendorMessage, "created_at"),
    Pruned(OrderStatusChange, "created_at"),
)


def age_parse(text: str) -> timedelta:
    """``400d`` or ``12h`` (an argparse ``type``)."""
    match = _AGE.match(text.strip())
    if match is None or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"expected an age such as 400d or 12h, got {text!r}")
    amount = int(match.group(1))
    return timedelta(days=amount) if match.group(2) == "d" else timedelta(hours=amount)


@contextmanager
def prune_allowed() -> Iterator[None]:
    """Let the block delete audit rows (PostgreSQL's triggers check the setting).

    Transaction-local, and switched off again at the end of the block so it
    cannot outlive it even when the caller's transaction goes on.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('audit.allow_prune', 'on', true)")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('audit.allow_prune', 'off', true)")


class Archive:
    """One JSON Lines file per table and cutoff; knows which ids it already holds."""

    def __init__(self, *, directory: Path, table: str, cutoff: datetime):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{table}-before-{cutoff:%Y%m%dT%H%M%SZ}.jsonl"
        self.ids = self._ids_read()

    def _ids_read(self) -> set[int]:
        if not self.path.exists():
            return set()
        data = self.path.read_bytes()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):  # a line cut by an interruption: drop it
            with self.path.open("r+b") as handle:
                handle.truncate(complete)
        return {json.loads(line)["id"] for line in data[:complete].splitlines() if line}

    def write(self, rows: list[dict[str, Any]]) -> int:
        fresh = [row for row in rows if row["id"] not in self.ids]
        if fresh:
            with self.path.open("a", encoding="utf-8") as handle:
                for row in fresh:
                    handle.write(json.dumps(row, cls=DjangoJSONEncoder, sort_keys=True) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            self.ids.update(row["id"] for row in fresh)
        return len(fresh)


def batch_prune(
    *, pruned: Pruned, cutoff: datetime, batch_size: int, archive: Archive | None
) -> tuple[int, int]:
    """Archive then delete one batch; returns (archived, deleted)."""
    manager = pruned.model._default_manager
    rows = list(
        manager.filter(**{f"{pruned.dated_by}__lt": cutoff}).order_by("pk").values()[:batch_size]
    )
    if not rows:
        return 0, 0
    archived = archive.write(rows) if archive is not None else 0
    with transaction.atomic(), prune_allowed():
        # The ORM delete follows the models' rules (a notification's deliveries
        # go with it; a newer notification keeps its row, its healing link
        # set to NULL).
        deleted = manager.filter(pk__in=[row["id"] for row in rows]).delete()[1]
    return archived, deleted.get(pruned.model._meta.label, 0)


class Command(BaseCommand):
    help = (
        "Delete audit rows older than an age, in bounded batches, after archiving them "
        "as JSON Lines. Safe to interrupt and rerun."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", type=age_parse, required=True, help="e.g. 400d")
        parser.add_argument("--archive", type=Path, default=None, help="Directory for archives.")
        parser.add_argument(
            "--batch-size",
            type=int_in_range(name="a batch size", minimum=1, maximum=BATCH_SIZE_MAX),
            default=5_000,
        )

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now().replace(microsecond=0)
        # Whole hours: a rerun soon after an interruption uses the same archive file.
        cutoff = (now - options["older_than"]).replace(minute=0, second=0)
        summary: dict[str, dict[str, int]] = {}
        for pruned in PRUNED:
            table = pruned.model._meta.db_table
            archive = (
                Archive(directory=options["archive"], table=table, cutoff=cutoff)
                if options["archive"] is not None
                else None
            )
            totals = {"archived": 0, "deleted": 0}
            while True:
                archived, deleted = batch_prune(
                    pruned=pruned,
                    cutoff=cutoff,
                    batch_size=options["batch_size"],
                    archive=archive,
                )
                if not deleted:
                    break
                totals["archived"] += archived
                totals["deleted"] += deleted
            summary[table] = totals
            self.stdout.write(
                f"{table:<24} archived {totals['archived']:>8}  deleted {totals['deleted']:>8}"
            )
        self.stdout.write(json.dumps({"cutoff": cutoff.isoformat(), "tables": summary}))
