"""Retries of concurrent reassignments at a backlog (issue 16), with real workers.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_reassign \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/15 ALLOW_INSECURE_DEFAULTS=true \\
    python -m bench.reassign_backlog --stuck 25000 --spreads 1,4,8

Seeds the database (its name must contain ``bench``) with ``--orders``
orders of which ``--stuck`` are stuck in a status whose first ladder step is
REASSIGN_VENDOR (PENDING and ACCEPTED: the seed's stuck CONFIRMED orders
become PENDING, its stuck PROCESSING ones ACCEPTED), and gives every vendor
room for ``--headroom`` more orders (the seed's 1,000 by default), so the
best-ranked vendors fill up during the cycle. Then, for each spread
(``HEALING_REASSIGN_SPREAD``), from the same snapshot: real ``celery
worker`` processes (``--workers`` x ``--concurrency`` prefork) on the
broker, one cycle run here, a wait until no healing of the cycle is active,
and the figures: heals, retries (the heal tasks' RETRY states, the
healings' ``retry_count`` and the workers' "healing retry scheduled" lines,
with their causes), retry share, wall time. A table per run, then the JSON
of every run on the last line.

The blast-radius guard is off in this run (``HEALING_GUARD_MIN_STUCK``):
a backlog this size is a guard trip, and the reassignments are what is
measured.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

GUARD_OFF = str(10**9)
RETRY_LINE = "healing retry scheduled"


def _uptime() -> str:
    done = subprocess.run(["uptime"], capture_output=True, text=True, check=False)  # noqa: S607
    return done.stdout.strip()


def _normalise(cause: str) -> str:
    """A cause without its ids and numbers, so equal causes count together."""
    return re.sub(r"\d+", "N", cause)[:120]


def _prepare(args: argparse.Namespace) -> dict[str, int]:
    """Seed, turn every stuck order into a reassignment, cap the vendors, snapshot."""
    from django.core.management import call_command
    from django.db import connection

    from bench import dataset

    call_command(
        "seed_marketplace", orders=args.orders, stuck=args.stuck, vendors=args.vendors, quiet=True
    )
    with connection.cursor() as cursor:
        # The seed's clocks: a stuck order is past its threshold (CONFIRMED
        # 60 min, PROCESSING 180), an open one well inside it; past the new
        # status's threshold (PENDING 30, ACCEPTED 120) either way.
        cursor.execute(
            "UPDATE orders SET status = CASE status WHEN 'CONFIRMED' THEN 'PENDING' "
            "ELSE 'ACCEPTED' END WHERE (status = 'CONFIRMED' AND stuck_since < now() - "
            "interval '60 minutes') OR (status = 'PROCESSING' AND stuck_since < now() - "
            "interval '180 minutes')"
        )
        converted = cursor.rowcount
        if args.orphans:
            # Control experiment: no stuck order leaves a vendor, so no
            # vendor ever gets a slot back during the cycle.
            cursor.execute(
                "UPDATE orders SET vendor_id = NULL WHERE vendor_id IS NOT NULL AND "
                "((status = 'PENDING' AND stuck_since < now() - interval '30 minutes') OR "
                "(status = 'ACCEPTED' AND stuck_since < now() - interval '120 minutes'))"
            )
            cursor.execute(
                "UPDATE vendors v SET open_orders = (SELECT count(*) FROM orders o WHERE "
                "o.vendor_id = v.id AND o.status IN ('PENDING','CONFIRMED','ACCEPTED',"
                "'PROCESSING','SHIPPED'))"
            )
        # Some room each, around --headroom: vendors differ, and the best ones fill.
        cursor.execute(
            "UPDATE vendors SET capacity = open_orders + GREATEST(1, round(%s * (0.5 + "
            "((id * 7919) %% 1000) / 1000.0)))",
            [args.headroom],
        )
        cursor.execute("SELECT COALESCE(SUM(capacity - open_orders), 0) FROM vendors")
        free = int(cursor.fetchone()[0])
    dataset.vacuum_analyze("orders", "vendors", "vendor_assignments")
    dataset.snapshot_take()
    return {"converted": converted, "free_slots": free}


def _purge_broker(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    for pattern in ("healing*", "unacked*", "_kombu*"):
        keys = list(client.scan_iter(match=pattern))
        if keys:
            client.delete(*keys)


def _retry_lines(logs: list[Path]) -> Counter[str]:
    causes: Counter[str] = Counter()
    for path in logs:
        for line in path.read_text(errors="replace").splitlines():
            if RETRY_LINE not in line:
                continue
            try:
                record = json.loads(line[line.index("{") :])
            except ValueError:
                causes["(unparsed line)"] += 1
                continue
            causes[_normalise(str(record.get("cause", "")))] += 1
    return causes


def _wait_done(cycle_id: int, timeout: float) -> None:
    from django.db import connection

    from healing.models import ACTIVE_STATUSES

    deadline = time.monotonic() + timeout
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM healing_actions WHERE cycle_id = %s "
                "AND recovery_status = ANY(%s)",
                [cycle_id, [str(s) for s in ACTIVE_STATUSES]],
            )
            active = cursor.fetchone()[0]
        if not active:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"{active} healings still active after {timeout:.0f}s")
        time.sleep(1)


def _db_figures(cycle_id: int) -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT recovery_status, count(*), COALESCE(SUM(retry_count), 0) "
            "FROM healing_actions WHERE cycle_id = %s GROUP BY recovery_status",
            [cycle_id],
        )
        rows = cursor.fetchall()
        cursor.execute("SELECT count(*) FROM vendors WHERE open_orders >= capacity AND is_active")
        full = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(DISTINCT new_vendor_id) FROM healing_actions WHERE cycle_id = %s",
            [cycle_id],
        )
        targets = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM vendors WHERE open_orders > capacity")
        overfilled = cursor.fetchone()[0]
        # Offers the vendor never got the order for: one per retry. A vendor
        # fills once, so at most the heals in flight lose a race on its last
        # slot; more losses on one vendor mean slots freed on it again
        # (its own stuck orders reassigned away) and raced for again.
        cursor.execute(
            "SELECT m.vendor_id, count(*) FROM vendor_messages m "
            "JOIN healing_actions h ON h.id = m.healing_id "
            "WHERE h.cycle_id = %s AND m.kind = 'OFFER' AND NOT EXISTS (SELECT 1 FROM "
            "vendor_assignments a WHERE a.order_id = m.order_id AND a.vendor_id = m.vendor_id) "
            "GROUP BY m.vendor_id",
            [cycle_id],
        )
        lost = dict(cursor.fetchall())
        cursor.execute(
            "SELECT count(*) FROM healing_actions h JOIN vendors v ON v.id = h.previous_vendor_id "
            "WHERE h.cycle_id = %s AND h.recovery_status = 'SUCCESS' "
            "AND v.open_orders >= v.capacity",
            [cycle_id],
        )
        freed = cursor.fetchone()[0]
    return {
        "outcomes": {status: count for status, count, _ in rows},
        "retry_count_sum": sum(int(retries) for _, _, retries in rows),
        "vendors_full": full,
        "vendors_overfilled": overfilled,
        "vendors_used": targets,
        "lost_offers": sum(lost.values()),
        "lost_offer_vendors": len(lost),
        "lost_offers_max_per_vendor": max(lost.values(), default=0),
        "slots_freed_on_full": freed,
    }


def _one_run(args: argparse.Namespace, spread: int, work: Path) -> dict[str, Any]:
    from django.conf import settings
    from django.test.utils import override_settings

    from bench.workers import BenchWorker, OutcomeLog, WorkerGroup
    from healing.cycle import healing_cycle_run
    from healing.models import Trigger
    from healing.tasks import heal_order

    broker = settings.CELERY_BROKER_URL
    _purge_broker(broker)
    run_dir = work / f"spread-{spread}"
    outcomes = OutcomeLog(run_dir / "outcomes")
    env = {
        "VENDOR_GATEWAY_BACKEND": "simulated",
        "VENDOR_GATEWAY_SIM_LATENCY_MS": str(args.gateway_latency_ms),
        "VENDOR_GATEWAY_SIM_FAILURE_RATE": "0",
        "HEALING_REASSIGN_SPREAD": str(spread),
        "HEALING_GUARD_MIN_STUCK": GUARD_OFF,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",  # the retry lines are INFO
        "CELERY_BROKER_URL": broker,
    }
    logs = [run_dir / f"worker-{index}.log" for index in range(args.workers)]
    workers = [
        BenchWorker(
            name=f"reassign-{spread}-{index}-{os.getpid()}",
            pool="prefork",
            concurrency=args.concurrency,
            env=env,
            outcome_dir=outcomes.directory,
            log_path=logs[index],
        )
        for index in range(args.workers)
    ]
    load_before = _uptime()
    with WorkerGroup(workers), override_settings(HEALING_GUARD_MIN_STUCK=int(GUARD_OFF)):
        started = time.monotonic()
        result = healing_cycle_run(trigger=Trigger.CLI)
        if result.cycle_id is None:
            raise SystemExit(f"the cycle did not run: {result.as_dict()}")
        _wait_done(result.cycle_id, args.timeout)
        wall = time.monotonic() - started
        load_after = _uptime()
    heal_rows = [row for row in outcomes.poll() if row.task == heal_order.name]
    states = Counter(row.state for row in heal_rows)
    causes = _retry_lines(logs)
    db = _db_figures(result.cycle_id)
    heals = result.dispatched
    retries = states.get("RETRY", 0)
    return {
        "spread": spread,
        "heals": heals,
        "retries": retries,
        "retry_share_pct": round(100 * retries / heals, 2) if heals else 0.0,
        "retry_count_sum": db["retry_count_sum"],
        "retry_lines": sum(causes.values()),
        "causes": dict(causes.most_common()),
        "outcomes": db["outcomes"],
        "vendors_used": db["vendors_used"],
        "vendors_full": db["vendors_full"],
        "vendors_overfilled": db["vendors_overfilled"],
        "lost_offers": db["lost_offers"],
        "lost_offer_vendors": db["lost_offer_vendors"],
        "lost_offers_max_per_vendor": db["lost_offers_max_per_vendor"],
        "slots_freed_on_full": db["slots_freed_on_full"],
        "wall_s": round(wall, 1),
        "heals_per_s": round(heals / wall, 1) if wall else 0.0,
        "uptime_before": load_before,
        "uptime_after": load_after,
    }


def _table(run: dict[str, Any]) -> str:
    lines = [f"spread {run['spread']}"]
    for key in (
        "heals",
        "retries",
        "retry_share_pct",
        "retry_count_sum",
        "retry_lines",
        "outcomes",
        "vendors_used",
        "vendors_full",
        "vendors_overfilled",
        "lost_offers",
        "lost_offer_vendors",
        "lost_offers_max_per_vendor",
        "slots_freed_on_full",
        "wall_s",
        "heals_per_s",
        "uptime_after",
    ):
        lines.append(f"  {key:<27} {run[key]}")
    for cause, count in run["causes"].items():
        lines.append(f"  cause {count:>7}  {cause}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--stuck", type=int, default=25_000)
    parser.add_argument("--vendors", type=int, default=200)
    parser.add_argument("--headroom", type=int, default=1000, help="Free slots a vendor, about.")
    parser.add_argument("--spreads", default="1", help="HEALING_REASSIGN_SPREAD values, e.g. 1,4,8")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--gateway-latency-ms", type=float, default=0.0)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument(
        "--orphans",
        action="store_true",
        help="Stuck orders have no vendor: no slot frees up during the cycle (a control).",
    )
    args = parser.parse_args()
    # SIGTERM unwinds like an error, so the workers started here stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["HEALING_GUARD_MIN_STUCK"] = GUARD_OFF
    # This process's cycle lines would interleave with the table.
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from bench import dataset
    from config.database import database_ensure

    db = settings.DATABASES["default"]
    if "bench" not in db["NAME"] or not settings.CELERY_BROKER_URL:
        sys.exit("bench.reassign_backlog needs a database named *bench* and CELERY_BROKER_URL")
    database_ensure(db)
    call_command("migrate", verbosity=0)
    seeded = time.monotonic()
    prepared = _prepare(args)
    print(f"seeded in {time.monotonic() - seeded:.0f}s: {prepared}", file=sys.stderr, flush=True)
    runs = []
    with tempfile.TemporaryDirectory(prefix="reassign-backlog-") as tmp:
        for index, spread in enumerate(int(s) for s in args.spreads.split(",") if s.strip()):
            if index:
                dataset.snapshot_restore()
            run = _one_run(args, spread, Path(tmp))
            print(_table(run), flush=True)
            runs.append(run)
    print(json.dumps({"args": vars(args), **prepared, "runs": runs}), flush=True)


if __name__ == "__main__":
    main()
