"""Fault tooling: sizes, a private Redis, fault-aware dispatch, and the
final-state checks that turn a scenario's database into one figures line.

Every figure but "duplicates absorbed" is read from the database. That one
counts heal_order deliveries that returned STALE (their claim was no longer
valid, so they changed nothing); a STALE delivery writes no row by design, so
the worker's own task log is the only record of it.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from healing.cycle import healing_cycle_run
from healing.dispatch import HEAL_ORDER
from healing.liveness import broker_tokens
from healing.models import ACTIVE_STATUSES, FINAL_STATUSES, HealingAction, SkipReason
from orders.models import CreditEntry, Order, OrderStatusChange, Vendor
from tests.factories import OrderFactory, VendorFactory
from tests.integration.workers import FAST_ENV, wait_until
from tests.multihost.brokers import broker_is_rabbitmq

# --- Sizes -----------------------------------------------------------------------

FULL = os.environ.get("FAULTS_SCALE", "ci").lower() == "full"


# make test's third phase runs the suite again with RabbitMQ as the broker:
# its figures lines say so, and the scenarios that need Redis itself skip.
ON_RABBITMQ = broker_is_rabbitmq(settings.CELERY_BROKER_URL or "")


def size(ci: int, full: int) -> int:
    """CI keeps the whole suite inside its time budget; `make faults` runs full size.
    The RabbitMQ phase repeats the suite, at half the CI order counts (counts
    of 100 and up; kills and rounds stay)."""
    if FULL:
        return full
    return ci // 2 if ON_RABBITMQ and ci >= 100 else ci


LEASE_SECONDS = int(FAST_ENV["HEALING_LEASE_SECONDS"])


def needs_redis_broker(what: str) -> None:
    """Skip a scenario that injects its fault into Redis itself (a private
    redis-server), saying which RabbitMQ scenario covers the same ground."""
    if ON_RABBITMQ:
        pytest.skip(f"injects its fault into a private Redis; on RabbitMQ: {what}")


# (status, minutes past its default threshold) for a mixed batch of stuck orders.
STUCK_MIX = (("PENDING", 31), ("CONFIRMED", 61), ("ACCEPTED", 121), ("PROCESSING", 181))


def make_vendors(count: int = 10, capacity: int = 100_000) -> list[Vendor]:
    return [VendorFactory(capacity=capacity, acceptance_rate=0.5 + i / 100) for i in range(count)]


def make_stuck_orders(
    total: int,
    *,
    mix: Iterable[tuple[str, int]] = STUCK_MIX,
    vendors: list[Vendor] | None = None,
) -> list[int]:
    """``total`` stuck orders spread over ``mix`` and a small pool of vendors."""
    vendors = vendors or make_vendors()
    mix = list(mix)
    ids: list[int] = []
    for index in range(total):
        status, minutes = mix[index % len(mix)]
        order = OrderFactory(
            status=status, stuck_minutes=minutes, vendor=vendors[index % len(vendors)]
        )
        ids.append(order.pk)
    return ids


# --- Processes ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A throw-away redis-server on its own port that keeps nothing on disk,
    so a restart loses every queued message (never the shared 6379)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                "/tmp",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not wait_until(self.answers, timeout=10, interval=0.05):
            raise RuntimeError(f"redis-server on port {self.port} did not start")
        return self

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: nothing is saved, every queued message is gone."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def __enter__(self) -> PrivateRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def worker_backend_pids() -> list[int]:
    """PostgreSQL backends on the test database other than this process's own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )
        return [row[0] for row in cursor.fetchall()]


def terminate_worker_backends() -> int:
    """pg_terminate_backend on every other client of the test database."""
    pids = worker_backend_pids()
    with connection.cursor() as cursor:
        for pid in pids:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    return len(pids)


# --- Dispatch and cycles -----------------------------------------------------------


class CountingDispatch:
    """A cycle's dispatch that sends each (healing id, token) ``copies`` times,
    optionally to another broker, and counts what it sent."""

    def __init__(self, *, copies: int = 1, broker_url: str | None = None) -> None:
        self.copies = copies
        self.broker_url = broker_url
        self.sent = 0

    def __call__(self, pairs: list[tuple[int, str]]) -> None:
        from healing.tasks import heal_order

        if not pairs:
            return
        app = heal_order.app
        with (
            app.connection_for_write(self.broker_url) as conn,
            app.producer_or_acquire(app.amqp.Producer(conn)) as producer,
        ):
            for _ in range(self.copies):
                for healing_id, token in pairs:
                    heal_order.apply_async(args=(healing_id, token), producer=producer)
                    self.sent += 1


def active_count(order_ids: list[int]) -> int:
    return HealingAction.objects.filter(
        order_id__in=order_ids, recovery_status__in=ACTIVE_STATUSES
    ).count()


def stuck_report(order_ids: list[int], *, most: int = 40) -> str:
    """The orders' healings still active, each with its lease and whether a
    Redis broker still holds a message for its token: what a scenario that
    timed out waiting for them prints."""
    rows = list(
        HealingAction.objects.filter(order_id__in=order_ids, recovery_status__in=ACTIVE_STATUSES)
        .order_by("id")
        .values_list("id", "recovery_status", "claim_token", "lease_expires_at", "updated_at")
    )
    present = broker_tokens(queues=["healing"], task_name=HEAL_ORDER)
    lines = [f"{len(rows)} healings still active at {timezone.now():%H:%M:%S.%f}:"]
    for healing_id, status, token, lease, updated in rows[:most]:
        where = "in the broker" if present is not None and str(token) in present else "nowhere"
        where = "?" if present is None else where
        lines.append(
            f"  {healing_id} {status} message {where}, updated {updated:%H:%M:%S.%f}, "
            f"lease until {lease:%H:%M:%S}"
        )
    return "\n".join(lines)


def final_count(order_ids: list[int]) -> int:
    return HealingAction.objects.filter(
        order_id__in=order_ids, recovery_status__in=FINAL_STATUSES
    ).count()


def wait_for_progress(order_ids: list[int], at_least: int, timeout: float = 60) -> bool:
    return wait_until(lambda: final_count(order_ids) >= at_least, timeout=timeout, interval=0.05)


def wait_quiet(order_ids: list[int], *, idle: float = 2.0, timeout: float = 120) -> None:
    """Until every healing is final, or nothing changed for ``idle`` seconds."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        state = (active_count(order_ids), final_count(order_ids))
        if state[0] == 0:
            return
        if state != last:
            last, since = state, time.monotonic()
        elif time.monotonic() - since >= idle:
            return
        time.sleep(0.2)


def recover(order_ids: list[int], *, dispatch: Callable | None = None, timeout: float = 120) -> int:
    """After the faults stop: let in-flight work settle, let the leases of
    whatever was lost expire, run one more cycle, and wait for its healings.
    Returns how many healings that cycle re-dispatched."""
    wait_quiet(order_ids)
    leases = HealingAction.objects.filter(
        order_id__in=order_ids, recovery_status__in=ACTIVE_STATUSES
    ).values_list("lease_expires_at", flat=True)
    latest = max((lease for lease in leases if lease is not None), default=None)
    if latest is not None:
        time.sleep(max((latest - timezone.now()).total_seconds(), 0) + 0.2)
    result = healing_cycle_run(trigger="BEAT", dispatch=dispatch)
    if not wait_until(lambda: active_count(order_ids) == 0, timeout=timeout, interval=0.2):
        # For the post-mortem: the healings still open, as the database has them.
        print(f"  still active {timeout:.0f}s after the recovery cycle (oldest 20):")
        for row in (
            HealingAction.objects.filter(
                order_id__in=order_ids, recovery_status__in=ACTIVE_STATUSES
            )
            .order_by("updated_at")[:20]
            .values_list(
                "pk",
                "recovery_status",
                "retry_count",
                "claim_token",
                "lease_expires_at",
                "next_attempt_at",
                "updated_at",
            )
        ):
            print("   ", row)
    return result.redispatched


# --- Final state and figures -------------------------------------------------------


def snapshot_episodes(order_ids: list[int]) -> dict[int, tuple[str, datetime]]:
    """Each order's stuck episode before the faults: (status, stuck clock)."""
    return {
        pk: (status, clock)
        for pk, status, clock in Order.objects.filter(pk__in=order_ids).values_list(
            "pk", "status", "stuck_since"
        )
    }


def stale_deliveries(log_paths: Iterable[Path]) -> int:
    """heal_order deliveries that found their claim taken and did nothing."""
    pattern = re.compile(r"heal_order\[[^\]]+\] succeeded in [0-9.e-]+s: 'STALE'")
    total = 0
    for path in log_paths:
        if Path(path).exists():
            total += len(pattern.findall(Path(path).read_text(errors="replace")))
    return total


def history_breaks(order_ids: list[int], episodes: dict[int, tuple[str, datetime]]) -> list[int]:
    """Orders whose status history since the set-up is not one chain that
    starts in the stuck status and ends in the order's current status."""
    chains: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for order_id, from_status, to_status in (
        OrderStatusChange.objects.filter(order_id__in=order_ids)
        .order_by("order_id", "id")
        .values_list("order_id", "from_status", "to_status")
    ):
        chains[order_id].append((from_status, to_status))
    statuses = dict(Order.objects.filter(pk__in=order_ids).values_list("pk", "status"))
    broken = []
    for order_id in order_ids:
        # The first row is "order placed"; the factory then put the order in its
        # stuck status without history (test set-up), so the chain starts there.
        state = episodes[order_id][0]
        for from_status, to_status in chains[order_id][1:]:
            if from_status != state:
                broken.append(order_id)
                break
            state = to_status
        else:
            if state != statuses[order_id]:
                broken.append(order_id)
    return broken


@dataclass
class Figures:
    scenario: str
    orders: int
    faults: int
    lost: int
    double_healed: int
    duplicates_absorbed: int
    p95_seconds: float | None
    details: dict = field(default_factory=dict)

    def line(self) -> str:
        p95 = "n/a" if self.p95_seconds is None else f"{self.p95_seconds:.2f}s"
        return (
            f"FIGURES {self.scenario}: orders={self.orders} faults={self.faults} "
            f"lost={self.lost} double_healed={self.double_healed} "
            f"duplicates_absorbed={self.duplicates_absorbed} time_to_heal_p95={p95}"
            f"{' (RabbitMQ)' if ON_RABBITMQ else ''}"
        )


REPORTED: list[str] = []


def figures(
    scenario: str,
    *,
    order_ids: list[int],
    episodes: dict[int, tuple[str, datetime]],
    faults: int,
    log_paths: Iterable[Path] = (),
    absorbed: int | None = None,
    extra_absorbed: int = 0,
) -> Figures:
    """Read the final database for ``order_ids`` and report one figures line."""
    healings = HealingAction.objects.filter(order_id__in=order_ids)

    # Lost: a healing still active, or an order still in the episode it was
    # stuck in with no healing of that episode that reached an outcome.
    still_active = set(
        healings.filter(recovery_status__in=ACTIVE_STATUSES).values_list("order_id", flat=True)
    )
    finished_episodes = set(
        healings.filter(recovery_status__in=FINAL_STATUSES).values_list(
            "order_id", "detected_status", "episode_started_at"
        )
    )
    now_state = {
        pk: (status, clock)
        for pk, status, clock in Order.objects.filter(pk__in=order_ids).values_list(
            "pk", "status", "stuck_since"
        )
    }
    untouched = {
        pk
        for pk, (status, clock) in episodes.items()
        if now_state[pk] == (status, clock) and (pk, status, clock) not in finished_episodes
    }
    lost = still_active | untouched

    # Double-healed: two successes in one stuck episode, two refunds of one
    # order, or more healing-made status changes than successful healings.
    double_success = (
        healings.filter(recovery_status="SUCCESS")
        .values("order_id", "detected_status", "episode_started_at")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values_list("order_id", flat=True)
    )
    double_refund = (
        CreditEntry.objects.filter(order_id__in=order_ids, kind="REFUND")
        .values("order_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values_list("order_id", flat=True)
    )
    successes = dict(
        healings.filter(recovery_status="SUCCESS")
        .values("order_id")
        .annotate(n=Count("id"))
        .values_list("order_id", "n")
    )
    healing_changes = (
        OrderStatusChange.objects.filter(order_id__in=order_ids, actor_type="HEALING")
        .values("order_id")
        .annotate(n=Count("id"))
        .values_list("order_id", "n")
    )
    excess = {pk for pk, n in healing_changes if n > successes.get(pk, 0)}
    doubled = set(double_success) | set(double_refund) | excess

    durations = sorted(
        seconds
        for seconds in healings.filter(
            completed_at__isnull=False, recovery_duration_seconds__isnull=False
        )
        .exclude(skip_reason__in=[SkipReason.GUARD, SkipReason.DRY_RUN])
        .values_list("recovery_duration_seconds", flat=True)
        if seconds is not None  # filtered above; narrows the type
    )
    p95 = durations[min(int(len(durations) * 0.95), len(durations) - 1)] if durations else None

    result = Figures(
        scenario=scenario,
        orders=len(order_ids),
        faults=faults,
        lost=len(lost),
        double_healed=len(doubled),
        duplicates_absorbed=(stale_deliveries(log_paths) if absorbed is None else absorbed)
        + extra_absorbed,
        p95_seconds=p95,
        details={
            "lost_orders": sorted(lost)[:20],
            "doubled_orders": sorted(doubled)[:20],
            "history_breaks": history_breaks(order_ids, episodes)[:20],
            "by_status": dict(
                healings.order_by()
                .values_list("recovery_status")
                .annotate(n=Count("id"))
                .values_list("recovery_status", "n")
            ),
        },
    )
    REPORTED.append(result.line())
    print("\n" + result.line(), flush=True)
    path = os.environ.get("FAULTS_FIGURES_FILE")
    if path:
        with open(path, "a") as handle:
            handle.write(result.line() + "\n")
    return result


def assert_sound(result: Figures) -> None:
    """The expectation everywhere: nothing lost, nothing healed twice, and
    every order's history one consistent chain."""
    assert result.lost == 0, result.details
    assert result.double_healed == 0, result.details
    assert not result.details["history_breaks"], result.details


def in_threads(target: Callable[[int], object], items: list[int], *, threads: int = 4) -> list:
    """Run ``target`` over ``items`` on ``threads`` threads, each with its own
    database connection; returns what each call returned or raised."""
    import threading

    results: list = [None] * len(items)

    def work(offset: int) -> None:
        try:
            for index in range(offset, len(items), threads):
                try:
                    results[index] = target(items[index])
                except Exception as exc:  # noqa: BLE001 - reported to the test
                    results[index] = exc
        finally:
            connection.close()

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=300)
    return results


LOG_DIR = Path(os.environ.get("FAULTS_LOG_DIR", "/tmp/fault-worker-logs"))


def worker_log(request) -> Path:
    """A fresh worker log per scenario, kept after the run for a post-mortem.
    One folder per test process: runs by several people on one machine must
    not count each other's deliveries."""
    folder = LOG_DIR / str(os.getpid())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{request.node.name}.log"
    path.unlink(missing_ok=True)
    return path
