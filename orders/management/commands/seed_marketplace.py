"""Load a realistic marketplace: N orders, exactly M of them stuck.

On PostgreSQL rows go in through COPY (a million orders in well under a
minute); elsewhere through batched INSERTs. Existing marketplace and healing
data are replaced. The same ``--seed`` gives the same data relative to now.
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from tqdm import tqdm

from orders.constants import DEFAULT_STUCK_THRESHOLDS_MINUTES

STUCK_STATUSES = ["PENDING", "CONFIRMED", "ACCEPTED", "PROCESSING"]
OPEN_STATUSES = ["PENDING", "CONFIRMED", "ACCEPTED", "PROCESSING", "SHIPPED"]
PAYMENT = ["CREDIT", "CREDIT", "CARD", "CARD", "BANK_TRANSFER"]
OPEN_SHARE = 0.15
# Tables emptied before loading, children first.
TABLES = [
    "admin_notification_deliveries",
    "admin_notifications",
    "healing_actions",
    "healing_cycles",
    "healing_metrics",
    "vendor_messages",
    "credit_entries",
    "vendor_assignments",
    "order_status_changes",
    "orders",
    "credit_accounts",
    "buyers",
    "vendors",
]

ORDER_COLUMNS = [
    "id",
    "number",
    "buyer_id",
    "vendor_id",
    "status",
    "payment_method",
    "total",
    "created_at",
    "updated_at",
    "status_changed_at",
    "stuck_since",
]
HISTORY_COLUMNS = [
    "order_id",
    "from_status",
    "to_status",
    "from_vendor_id",
    "to_vendor_id",
    "actor_type",
    "reason",
    "created_at",
]
ASSIGNMENT_COLUMNS = ["order_id", "vendor_id", "assigned_at", "ended_at", "outcome"]
CREDIT_COLUMNS = ["account_id", "order_id", "kind", "amount", "created_at"]


def _positive(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError
    return number


class Command(BaseCommand):
    help = "Replace the marketplace with N orders of which exactly M are stuck."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--orders", type=_positive, required=True)
        parser.add_argument("--stuck", type=_positive, required=True)
        parser.add_argument("--vendors", type=_positive, default=200)
        parser.add_argument("--buyers", type=_positive, default=500)
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument(
            "--no-vendor-share",
            type=float,
            default=0.1,
            help="Share of stuck PENDING orders with no vendor at all.",
        )
        parser.add_argument("--quiet", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **opts: Any) -> None:
        orders, stuck = opts["orders"], opts["stuck"]
        vendors, buyers = opts["vendors"], opts["buyers"]
        if stuck > orders:
            raise CommandError(f"--stuck ({stuck}) cannot exceed --orders ({orders})")
        if vendors < 2:
            raise CommandError("--vendors must be at least 2 (reassignment needs another vendor)")
        if buyers < 1:
            raise CommandError("--buyers must be at least 1")
        started = time.monotonic()
        rng = random.Random(opts["seed"])
        now = timezone.now()
        loader = _Loader(quiet=opts["quiet"], total=orders)
        with transaction.atomic():
            loader.truncate()
            loader.load_vendors_buyers(vendors=vendors, buyers=buyers, rng=rng, now=now)
            open_count = max(stuck, int(orders * OPEN_SHARE))
            loader.load_orders(
                rows=_order_rows(
                    rng=rng,
                    now=now,
                    orders=orders,
                    stuck=stuck,
                    open_count=open_count,
                    vendors=vendors,
                    buyers=buyers,
                    no_vendor_share=opts["no_vendor_share"],
                )
            )
            loader.finish()
            loader.phase("commit")
        loader.phase("done")
        elapsed = time.monotonic() - started
        if opts["verbosity"] >= 2:
            for name, seconds in loader.phases.items():
                self.stdout.write(f"  {name:<22} {seconds:7.1f}s")
        self.stdout.write(
            f"seeded {orders} orders ({stuck} stuck, {open_count} open), {vendors} vendors, "
            f"{buyers} buyers in {elapsed:.1f}s on {connection.vendor}"
        )


def _order_rows(
    *,
    rng: random.Random,
    now: datetime,
    orders: int,
    stuck: int,
    open_count: int,
    vendors: int,
    buyers: int,
    no_vendor_share: float,
) -> Iterator[tuple]:
    """Yield (order, history, assignment, credit entries) per order.

    Order ids 1..N; the stuck ones are spread evenly through the id range so
    detection cannot benefit from them being adjacent.
    """
    stuck_every = orders / stuck if stuck else 0
    stuck_ids = {int(i * stuck_every) + 1 for i in range(stuck)} if stuck else set()
    open_rest = open_count - stuck
    finished = orders - open_count
    stuck_seen = 0
    open_left, finished_left = open_rest, finished
    for order_id in range(1, orders + 1):
        buyer_id = rng.randint(1, buyers)
        vendor_id: int | None = rng.randint(1, vendors)
        payment = rng.choice(PAYMENT)
        total = Decimal(rng.randint(1000, 500_000)) / 100
        if order_id in stuck_ids:
            status = STUCK_STATUSES[stuck_seen % 4]
            stuck_seen += 1
            threshold = DEFAULT_STUCK_THRESHOLDS_MINUTES[status]
            clock = now - timedelta(minutes=threshold + rng.randint(1, 600))
            created = clock - timedelta(minutes=rng.randint(0, 240))
            if status == "PENDING" and rng.random() < no_vendor_share:
                vendor_id = None
        else:
            # Exactly open_rest of the non-stuck orders end up open.
            if rng.random() * (open_left + finished_left) < open_left:
                open_left -= 1
                status = rng.choice(OPEN_STATUSES)
                threshold = DEFAULT_STUCK_THRESHOLDS_MINUTES.get(status, 180)
                # Well inside the threshold so a long benchmark does not see
                # these orders become stuck under it.
                clock = now - timedelta(minutes=rng.uniform(0, threshold / 3))
                created = clock - timedelta(minutes=rng.randint(0, 240))
            else:
                finished_left -= 1
                status = "DELIVERED" if rng.random() < 0.85 else "CANCELLED"
                created = now - timedelta(days=rng.uniform(1, 90))
                clock = created + timedelta(hours=rng.uniform(1, 72))
        order = (
            order_id,
            f"ORD-{order_id:08d}",
            buyer_id,
            vendor_id,
            status,
            payment,
            total,
            created,
            clock,
            clock,
            clock,
        )
        history = (order_id, "", status, None, vendor_id, "SYSTEM", "seeded", created)
        assignment = None
        if vendor_id is not None:
            outcome = {"DELIVERED": "COMPLETED", "CANCELLED": "CANCELLED"}.get(status, "ACTIVE")
            ended = clock if outcome != "ACTIVE" else None
            assignment = (order_id, vendor_id, created, ended, outcome)
        credit: list[tuple] = []
        if payment == "CREDIT":
            credit.append((buyer_id, order_id, "CHARGE", -total, created))
            if status == "CANCELLED":
                credit.append((buyer_id, order_id, "REFUND", total, clock))
        yield order, history, assignment, credit


def _tsv(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class _Loader:
    BATCH = 20_000

    # Big tables whose secondary indexes are rebuilt once after the load:
    # one sort per index instead of a million random inserts into each.
    BULK_TABLES = ("orders", "order_status_changes", "vendor_assignments", "credit_entries")

    def __init__(self, *, quiet: bool, total: int) -> None:
        self.postgres = connection.vendor == "postgresql"
        self.progress = tqdm(total=total, unit="orders", disable=quiet, mininterval=0.5)
        self.vendor_load: dict[int, int] = {}
        self.dropped_indexes: list[str] = []
        # Where the time goes (shown with -v 2): phase name -> seconds.
        self.phases: dict[str, float] = {}
        self._phase_name, self._phase_started = "prepare", time.monotonic()

    def phase(self, name: str) -> None:
        now = time.monotonic()
        self.phases[self._phase_name] = self.phases.get(self._phase_name, 0.0) + (
            now - self._phase_started
        )
        self._phase_name, self._phase_started = name, now

    def truncate(self) -> None:
        with connection.cursor() as cursor:
            if self.postgres:
                cursor.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
                cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
                # The rows are consistent by construction: skip the millions of
                # per-row foreign-key trigger checks when the role allows it
                # (superuser, as on a development or benchmark database).
                try:
                    with transaction.atomic():
                        cursor.execute("SET LOCAL session_replication_role = replica")
                except DatabaseError:
                    pass
                # Unique indexes stay: they are what the constraints rest on.
                cursor.execute(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) "
                    "AND indexdef NOT LIKE 'CREATE UNIQUE%%'",
                    [list(self.BULK_TABLES)],
                )
                for name, definition in cursor.fetchall():
                    self.dropped_indexes.append(definition)
                    cursor.execute(f'DROP INDEX "{name}"')
            else:
                for table in TABLES:
                    cursor.execute(f"DELETE FROM {table}")  # noqa: S608
                cursor.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")
                if cursor.fetchone():
                    marks = ", ".join(["%s"] * len(TABLES))
                    cursor.execute(
                        f"DELETE FROM sqlite_sequence WHERE name IN ({marks})",  # noqa: S608
                        TABLES,
                    )

    def load_vendors_buyers(
        self, *, vendors: int, buyers: int, rng: random.Random, now: datetime
    ) -> None:
        vendor_rows = [
            (
                i,
                f"Vendor {i:04d}",
                True,
                100_000,
                0,
                round(rng.uniform(0.6, 0.99), 4),
                round(rng.uniform(5, 120), 1),
                "",
                now,
                "UTC",
                "{}",  # always open: thresholds in wall-clock minutes
                "[]",
            )
            for i in range(1, vendors + 1)
        ]
        self._insert(
            "vendors",
            [
                "id",
                "name",
                "is_active",
                "capacity",
                "open_orders",
                "acceptance_rate",
                "avg_response_minutes",
                "webhook_url",
                "created_at",
                "time_zone",
                "working_hours",
                "holidays",
            ],
            vendor_rows,
        )
        self._insert(
            "buyers",
            ["id", "name", "created_at"],
            [(i, f"Buyer {i:05d} Ltd", now) for i in range(1, buyers + 1)],
        )
        self._insert(
            "credit_accounts",
            ["buyer_id", "credit_limit"],
            [(i, Decimal(rng.randint(10, 500) * 1000)) for i in range(1, buyers + 1)],
        )

    def load_orders(self, *, rows: Iterator[tuple]) -> None:
        self.phase("generate + COPY rows")
        orders, history, assignments, credit = [], [], [], []
        for order, change, assignment, entries in rows:
            if order[3] is not None and order[4] in OPEN_STATUSES:
                self.vendor_load[order[3]] = self.vendor_load.get(order[3], 0) + 1
            orders.append(order)
            history.append(change)
            if assignment is not None:
                assignments.append(assignment)
            credit.extend(entries)
            if len(orders) >= self.BATCH:
                self._flush(orders, history, assignments, credit)
                orders, history, assignments, credit = [], [], [], []
        self._flush(orders, history, assignments, credit)
        self.progress.close()

    def _flush(self, orders: list, history: list, assignments: list, credit: list) -> None:
        self._insert("orders", ORDER_COLUMNS, orders)
        self._insert("order_status_changes", HISTORY_COLUMNS, history)
        self._insert("vendor_assignments", ASSIGNMENT_COLUMNS, assignments)
        self._insert("credit_entries", CREDIT_COLUMNS, credit)
        self.progress.update(len(orders))

    def _insert(self, table: str, columns: list[str], rows: list[tuple]) -> None:
        if not rows:
            return
        if self.postgres:
            buffer = io.StringIO()
            for row in rows:
                buffer.write("\t".join(map(_tsv, row)))
                buffer.write("\n")
            raw = connection.connection
            with (
                raw.cursor() as cursor,
                cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
            ):
                copy.write(buffer.getvalue())
        else:
            placeholders = ", ".join(["%s"] * len(columns))
            with connection.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",  # noqa: S608
                    rows,
                )

    def finish(self) -> None:
        with connection.cursor() as cursor:
            # Vendor load counters from the open orders just loaded.
            cursor.executemany(
                "UPDATE vendors SET open_orders = %s WHERE id = %s",
                [(load, vendor_id) for vendor_id, load in self.vendor_load.items()],
            )
            cursor.execute("UPDATE vendors SET capacity = open_orders + 1000")
            if self.postgres:
                # Run the deferred foreign-key checks now: an index cannot be
                # built on a table with pending trigger events.
                self.phase("foreign-key checks")
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                self.phase("rebuild indexes")
                for definition in self.dropped_indexes:
                    cursor.execute(definition)
                self.phase("analyze")
                for table in ("orders", "vendors", "buyers"):
                    sql = (
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                        f"COALESCE((SELECT MAX(id) FROM {table}), 1))"
                    )
                    cursor.execute(sql)  # fixed table names, no user input
                cursor.execute("ANALYZE orders")
                cursor.execute("ANALYZE healing_actions")
                cursor.execute("ANALYZE vendor_assignments")
