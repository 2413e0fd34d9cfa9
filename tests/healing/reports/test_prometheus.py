"""/metrics: the named series with correct values, computed from the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from healing.cycle import healing_cycle_run
from healing.models import HealingAction, HealingCycle
from healing.reports.prometheus import RECOVERY_BUCKETS, metrics_render
from tests.factories import AdminNotificationFactory, OrderFactory, VendorFactory
from tests.healing.reports.metrics_data import NOW, healing_make

pytestmark = pytest.mark.django_db

TOKEN = "scrape-secret-0123456789"


@pytest.fixture(autouse=True)
def _fresh_cache():
    # The closed-days part is cached per day; tests share the cache backend.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def metrics_settings(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    settings.METRICS_TRUST_X_FORWARDED_FOR = False
    settings.TRUSTED_PROXY_COUNT = 0
    return settings


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(client: Client | None = None, **headers) -> dict[tuple[str, tuple], float]:
    client = client or Client()
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return samples(response.content.decode())


def _l(**labels) -> tuple:
    return tuple(sorted(labels.items()))


@pytest.mark.django_db(transaction=True)
def test_metrics_after_a_cycle_expose_the_named_series(metrics_settings):
    VendorFactory(acceptance_rate=0.5)
    OrderFactory(status="PENDING", stuck_minutes=45)
    OrderFactory(status="CONFIRMED", stuck_minutes=61)
    AdminNotificationFactory(
        severity="CRITICAL", notification_type="SYSTEM_ALERT", order=None, dedup_key="test"
    )

    result = healing_cycle_run(trigger="CLI")
    still_stuck = OrderFactory(status="ACCEPTED", stuck_minutes=150)  # arrived after the cycle
    metrics = scrape()

    assert result.ran and result.healed == 2
    assert metrics[("healing_detections_total", _l(issue_type="STUCK_PENDING"))] == 1
    assert metrics[("healing_detections_total", _l(issue_type="STUCK_CONFIRMED"))] == 1
    assert metrics[("healing_healings_total", _l(action="REASSIGN_VENDOR", outcome="SUCCESS"))] == 1
    assert metrics[("healing_healings_total", _l(action="RETRY_WORKFLOW", outcome="SUCCESS"))] == 1
    assert metrics[("healing_recovery_time_seconds_count", _l(action="REASSIGN_VENDOR"))] == 1
    assert (
        metrics[("healing_recovery_time_seconds_bucket", _l(action="REASSIGN_VENDOR", le="+Inf"))]
        == 1
    )
    assert metrics[("healing_stuck_orders", _l(status="ACCEPTED"))] == 1
    assert metrics[("healing_stuck_orders", _l(status="PENDING"))] == 0
    oldest = metrics[("healing_stuck_order_oldest_seconds", _l(status="ACCEPTED"))]
    assert 150 * 60 <= oldest < 151 * 60  # seconds, the base unit
    assert not [name for name, _ in metrics if name.endswith("_minutes")]
    cycle = HealingCycle.objects.get(pk=result.cycle_id)
    assert metrics[("healing_cycle_last_duration_seconds", ())] == pytest.approx(
        cycle.duration_ms / 1000
    )
    assert metrics[("healing_cycle_last_detected", ())] == 2
    assert metrics[("healing_cycles_total", _l(status="FINISHED"))] == 1
    assert metrics[("healing_cycle_duration_seconds_count", ())] == 1
    assert metrics[("healing_cycle_duration_seconds_sum", ())] == pytest.approx(
        cycle.duration_ms / 1000
    )
    assert metrics[("healing_cycle_running", ())] == 0
    assert (
        metrics[("healing_admin_notifications_total", _l(severity="CRITICAL", type="SYSTEM_ALERT"))]
        == 1
    )
    assert metrics[("healing_admin_notifications_pending", _l(severity="CRITICAL"))] == 1
    assert metrics[("healing_active_healings", _l(status="PENDING"))] == 0
    assert metrics[("healing_healings_total", _l(action="CANCEL_ORDER", outcome="FAILED"))] == 0
    assert metrics[("healing_admin_notifications_pending", _l(severity="LOW"))] == 0
    assert still_stuck.pk


def test_counters_add_closed_days_and_the_live_window():
    with time_machine.travel(NOW, tick=False):
        for days_ago in (0, 1, 5, 40):  # live, live, closed (cached), closed
            healing_make(
                detected_at=NOW - timedelta(days=days_ago),
                issue_type="STUCK_PENDING",
                action="REASSIGN_VENDOR",
                status="SUCCESS",
                seconds=100,
            )
        first = samples(metrics_render().decode())
        healing_make(
            detected_at=NOW - timedelta(minutes=5),
            issue_type="STUCK_PENDING",
            action="REASSIGN_VENDOR",
            status="FAILED",
            seconds=10,
            notified=True,
        )
        second = samples(metrics_render().decode())

    success = ("healing_healings_total", _l(action="REASSIGN_VENDOR", outcome="SUCCESS"))
    failed = ("healing_healings_total", _l(action="REASSIGN_VENDOR", outcome="FAILED"))
    detections = ("healing_detections_total", _l(issue_type="STUCK_PENDING"))
    assert first[success] == second[success] == 4
    assert first[failed] == 0  # exported from the start, as zero
    assert second[failed] == 1
    assert (first[detections], second[detections]) == (4, 5)  # monotonic


def test_recovery_histogram_buckets_are_cumulative():
    with time_machine.travel(NOW, tick=False):
        for seconds in (5, 45, 299, 301, 10_000):
            healing_make(
                detected_at=NOW - timedelta(hours=1),
                issue_type="STUCK_CONFIRMED",
                action="RETRY_WORKFLOW",
                status="SUCCESS",
                seconds=seconds,
            )
        metrics = samples(metrics_render().decode())

    def bucket(le):
        return metrics[("healing_recovery_time_seconds_bucket", _l(action="RETRY_WORKFLOW", le=le))]

    assert RECOVERY_BUCKETS[:5] == (10, 30, 60, 120, 300)
    assert [bucket("10.0"), bucket("60.0"), bucket("300.0"), bucket("7200.0"), bucket("+Inf")] == [
        1,
        2,
        3,
        4,
        5,
    ]
    assert metrics[
        ("healing_recovery_time_seconds_sum", _l(action="RETRY_WORKFLOW"))
    ] == pytest.approx(10_650)


def test_expired_leases_gauge():
    with time_machine.travel(NOW, tick=False):
        healing_make(
            detected_at=NOW - timedelta(hours=1),
            issue_type="STUCK_PENDING",
            action="REASSIGN_VENDOR",
            status="PENDING",
        )  # lease ended 50 minutes ago
        metrics = samples(metrics_render().decode())

    assert metrics[("healing_expired_leases", ())] == 1
    assert metrics[("healing_active_healings", _l(status="PENDING"))] == 1


def test_every_worker_answers_the_same_numbers():
    # Two scrapes stand for two gunicorn workers: nothing lives in process
    # memory, so a healing finished elsewhere shows in both.
    with time_machine.travel(NOW, tick=False):
        healing_make(
            detected_at=NOW - timedelta(minutes=3),
            issue_type="STUCK_PENDING",
            action="CANCEL_ORDER",
            status="SUCCESS",
            seconds=20,
        )
        one, two = metrics_render(), metrics_render()
    assert samples(one.decode()) == samples(two.decode())


def test_scrape_query_count_does_not_grow_with_history():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def warm_scrape_queries() -> int:
        cache.clear()
        metrics_render()  # fills the closed-days cache
        with CaptureQueriesContext(connection) as queries:
            metrics_render()
        return len(queries.captured_queries)

    def history(days):
        for days_ago in days:
            healing_make(
                detected_at=NOW - timedelta(days=days_ago),
                issue_type="STUCK_PENDING",
                action="REASSIGN_VENDOR",
                status="SUCCESS",
                seconds=60,
            )

    with time_machine.travel(NOW, tick=False):
        history(range(0, 30, 3))
        short = warm_scrape_queries()
        history(range(31, 400, 7))
        long = warm_scrape_queries()

    assert short == long <= 18  # + 2: the vendor circuits (prometheus_vendors)
    assert HealingAction.objects.count() == 63


def test_cycle_duration_histogram_and_cycle_counter():
    from tests.factories import HealingCycleFactory

    with time_machine.travel(NOW, tick=False):
        for days_ago, ms in ((0, 80.0), (0, 400.0), (3, 4000.0), (10, 200_000.0)):
            HealingCycleFactory(started_at=NOW - timedelta(days=days_ago), duration_ms=ms)
        HealingCycleFactory(started_at=NOW - timedelta(hours=1), status="FAILED")
        metrics = samples(metrics_render().decode())

    def bucket(le):
        return metrics[("healing_cycle_duration_seconds_bucket", _l(le=le))]

    assert [bucket("0.1"), bucket("0.5"), bucket("5.0"), bucket("300.0"), bucket("+Inf")] == [
        1,
        2,
        3,
        4,
        4,
    ]
    assert metrics[("healing_cycle_duration_seconds_sum", ())] == pytest.approx(204.48)
    assert metrics[("healing_cycles_total", _l(status="FINISHED"))] == 4
    assert metrics[("healing_cycles_total", _l(status="FAILED"))] == 1
    assert metrics[("healing_cycles_total", _l(status="ABANDONED"))] == 0


def test_the_minute_task_warms_the_closed_days_cache():
    from django.utils import timezone

    from healing import tasks
    from healing.reports.measures import window_start

    boundary = window_start(days=2, now=timezone.now()).date().isoformat()
    assert cache.get(f"healing:prometheus:closed:v3:{boundary}") is None

    tasks.metrics_rollup.apply()

    closed = cache.get(f"healing:prometheus:closed:v3:{boundary}")
    assert closed is not None and set(closed) >= {"detections", "healings", "cycles"}


def test_cycles_counter_counts_ended_cycles_only_and_never_goes_down():
    """Issue 20 item 2: a RUNNING cycle is a gauge, not a counter sample."""
    from tests.factories import HealingCycleFactory

    HealingCycleFactory(status="FINISHED", duration_ms=50.0)
    before = samples(metrics_render().decode())
    running = HealingCycleFactory(status="RUNNING", duration_ms=None, finished_at=None)
    during = samples(metrics_render().decode())
    HealingCycle.objects.filter(pk=running.pk).update(status="FINISHED", duration_ms=80.0)
    after = samples(metrics_render().decode())

    def total(metrics):
        return sum(v for (name, _), v in metrics.items() if name == "healing_cycles_total")

    assert ("healing_cycles_total", _l(status="RUNNING")) not in during
    assert (total(before), total(during), total(after)) == (1, 1, 2)
    assert (during[("healing_cycle_running", ())], after[("healing_cycle_running", ())]) == (1, 0)


def test_an_outcome_counts_when_it_completes_whatever_the_cache_holds():
    """Issue 20 item 2: healing_healings_total does not stutter between
    workers whose closed-days caches were filled at different times."""
    series = ("healing_healings_total", _l(action="REASSIGN_VENDOR", outcome="SUCCESS"))
    with time_machine.travel(NOW, tick=False):
        late = healing_make(  # detected before the cached days, still running
            detected_at=NOW - timedelta(days=4),
            issue_type="STUCK_PENDING",
            action="REASSIGN_VENDOR",
            status="IN_PROGRESS",
        )
        first = samples(metrics_render().decode())  # fills the closed-days cache
        HealingAction.objects.filter(pk=late.pk).update(
            recovery_status="SUCCESS", completed_at=NOW - timedelta(minutes=1)
        )
        warm = samples(metrics_render().decode())  # a worker with the old cache
        cache.clear()
        cold = samples(metrics_render().decode())  # a worker that computes it now
        again = samples(metrics_render().decode())

    assert first[series] == 0
    assert warm[series] == cold[series] == again[series] == 1
    assert warm == cold


def test_the_closed_days_never_change_after_the_fact():
    """What the cache holds for a closed day is what a fresh computation gives later."""
    series = ("healing_healings_total", _l(action="RETRY_WORKFLOW", outcome="FAILED"))
    with time_machine.travel(NOW, tick=False):
        for days_ago in (3, 6):
            healing_make(
                detected_at=NOW - timedelta(days=days_ago),
                issue_type="STUCK_CONFIRMED",
                action="RETRY_WORKFLOW",
                status="FAILED",
                seconds=30,
            )
        scrapes = []
        for _ in range(3):
            scrapes.append(samples(metrics_render().decode()))
            cache.clear()

    assert [s[series] for s in scrapes] == [2, 2, 2]
    assert scrapes[0] == scrapes[1] == scrapes[2]


def test_pending_notifications_gauge_is_neither_acknowledged_nor_resolved():
    """Issue 20 item 6: one meaning of "pending", notifications_list()'s."""
    from django.utils import timezone

    AdminNotificationFactory(severity="HIGH")
    AdminNotificationFactory(severity="HIGH", dedup_key="seen", acknowledged_at=timezone.now())
    AdminNotificationFactory(severity="HIGH", dedup_key="gone", resolved_at=timezone.now())

    metrics = samples(metrics_render().decode())

    assert metrics[("healing_admin_notifications_pending", _l(severity="HIGH"))] == 1
