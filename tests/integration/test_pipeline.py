"""The running system: beat-style cycles fan out to real worker processes over
real Redis and PostgreSQL. No eager mode here."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db.models import Count

from healing.cycle import healing_cycle_run
from healing.models import HealingAction, HealingCycle
from healing.tasks import run_cycle
from notifications.models import AdminNotification
from orders.credentials import vendor_credentials_issue
from orders.models import Vendor
from tests.factories import OrderFactory, VendorFactory
from tests.integration.workers import Worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FINAL = ("SUCCESS", "FAILED", "SKIPPED", "MANUAL_REQUIRED")


class VendorEndpoint:
    """A vendor's webhook on 127.0.0.1 that fails the first `fail_first`
    messages per order with 503, and records when each one arrived."""

    def __init__(self, *, fail_first: int) -> None:
        self.fail_first = fail_first
        self.calls: dict[int, list[tuple[float, int]]] = defaultdict(list)
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                # Standard Webhooks body: {"type", "timestamp", "data": {"order_id", ...}}.
                calls = endpoint.calls[body["data"]["order_id"]]
                code = 503 if len(calls) < endpoint.fail_first else 200
                calls.append((time.monotonic(), code))
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def all_final(count: int) -> bool:
    return HealingAction.objects.filter(recovery_status__in=FINAL).count() >= count


def test_one_cycle_heals_a_thousand_stuck_orders_on_a_real_worker():
    VendorFactory.create_batch(20, capacity=10_000)
    for status, minutes in (
        ("PENDING", 31),
        ("CONFIRMED", 61),
        ("ACCEPTED", 121),
        ("PROCESSING", 181),
    ):
        OrderFactory.create_batch(250, status=status, stuck_minutes=minutes)

    with Worker(pool="prefork", concurrency=2):
        started = time.monotonic()
        result = healing_cycle_run(trigger="CLI")
        assert result.detected == 1000 and result.dispatched == 1000
        assert wait_until(lambda: all_final(1000), timeout=120), HealingAction.objects.values(
            "recovery_status"
        ).annotate(n=Count("id"))
        elapsed = time.monotonic() - started

    print(f"\nhealed 1000 stuck orders with one worker (2 prefork processes) in {elapsed:.1f}s")
    assert set(HealingAction.objects.values_list("recovery_status", flat=True)) == {"SUCCESS"}
    # No order has two successful healings in one stuck episode.
    doubled = (
        HealingAction.objects.filter(recovery_status="SUCCESS")
        .values("order_id", "detected_status", "episode_started_at")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    assert not doubled.exists()


def test_two_cycles_sent_at_the_same_moment_one_works_the_other_exits():
    OrderFactory.create_batch(50, status="CONFIRMED", stuck_minutes=61)

    with Worker(pool="threads", concurrency=4, queues="default,healing"):
        run_cycle.delay(trigger="BEAT")
        run_cycle.delay(trigger="STARTUP")
        assert wait_until(lambda: all_final(50), timeout=60)
        time.sleep(1)  # let the second run_cycle finish exiting

    assert HealingCycle.objects.count() == 1
    assert HealingAction.objects.count() == 50


def _signing_vendor(url: str) -> Vendor:
    """A vendor reachable by webhook: it has a signing secret (unsigned messages never leave)."""
    vendor = VendorFactory(webhook_url=url)
    vendor_credentials_issue(vendor=vendor)
    return vendor


def test_transient_vendor_failures_retry_with_growing_delays_then_succeed():
    endpoint = VendorEndpoint(fail_first=3)
    try:
        OrderFactory(status="CONFIRMED", stuck_minutes=61, vendor=_signing_vendor(endpoint.url))
        with Worker(env={"VENDOR_GATEWAY_BACKEND": "webhook", "HEALING_TASK_MAX_RETRIES": "5"}):
            healing_cycle_run(trigger="CLI")
            assert wait_until(lambda: all_final(1), timeout=60)
    finally:
        endpoint.close()

    healing = HealingAction.objects.get()
    assert (healing.recovery_status, healing.retry_count) == ("SUCCESS", 3)
    ((_, calls),) = endpoint.calls.items()
    assert [code for _, code in calls] == [503, 503, 503, 200]
    gaps = [later - earlier for (earlier, _), (later, _) in zip(calls, calls[1:])]
    # Backoff base 0.2 s doubling, capped at 1 s, with jitter in [d/2, d].
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4, gaps
    assert gaps[2] >= gaps[0], gaps
    assert not AdminNotification.objects.exists()


def test_a_permanent_vendor_failure_ends_failed_with_a_notification():
    endpoint = VendorEndpoint(fail_first=10**6)
    try:
        order = OrderFactory(
            status="PROCESSING", stuck_minutes=181, vendor=_signing_vendor(endpoint.url)
        )
        with Worker(env={"VENDOR_GATEWAY_BACKEND": "webhook", "HEALING_TASK_MAX_RETRIES": "2"}):
            healing_cycle_run(trigger="CLI")
            assert wait_until(lambda: all_final(1), timeout=60)
    finally:
        endpoint.close()

    healing = HealingAction.objects.get()
    assert (healing.recovery_status, healing.retry_count) == ("FAILED", 2)
    assert "503" in healing.error_message
    assert len(endpoint.calls[order.pk]) == 3
    note = AdminNotification.objects.get(order=order)
    assert (note.notification_type, note.severity) == ("HEALING_FAILED", "HIGH")


def test_a_full_vendor_is_never_overfilled_by_concurrent_reassignments():
    VendorFactory(capacity=5, acceptance_rate=0.99)
    OrderFactory.create_batch(30, status="PENDING", stuck_minutes=31)
    with Worker(pool="threads", concurrency=8):
        healing_cycle_run(trigger="CLI")
        assert wait_until(lambda: all_final(30), timeout=60)
    best = Vendor.objects.get(acceptance_rate=0.99)
    assert best.open_orders <= best.capacity == 5
    assert best.orders.count() == best.open_orders


def test_a_starting_worker_runs_one_cycle_shortly_after_and_logs_the_seed_lines(tmp_path):
    OrderFactory.create_batch(3, status="CONFIRMED", stuck_minutes=61)
    log = tmp_path / "worker.log"
    env = {"HEALING_RUN_ON_WORKER_START": "true", "HEALING_STARTUP_DELAY_SECONDS": "1"}
    with Worker(env=env, log_path=log):
        assert wait_until(lambda: all_final(3), timeout=60)
        assert wait_until(lambda: "Cycle completed" in log.read_text(), timeout=10)

    cycle = HealingCycle.objects.get()
    assert (cycle.trigger, cycle.detected, cycle.status) == ("STARTUP", 3, "FINISHED")
    text = log.read_text()
    for line in (
        "Self-healing worker started (runs every 5 minutes)",
        "Self-healing worker: Starting cycle",
        "Self-healing worker: Cycle completed",
    ):
        assert line in text
