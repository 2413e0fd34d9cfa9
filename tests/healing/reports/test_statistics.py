"""Statistics, percentiles and KPIs against a hand-computed fixture (metrics_data.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from healing.reports.kpis import kpi_met, kpis_evaluate
from healing.reports.measures import percentile, window_start
from healing.reports.statistics import (
    statistics_by_issue_type,
    statistics_by_vendor,
    statistics_daily,
    stuck_orders_summary,
)
from tests.factories import OrderFactory
from tests.healing.reports.metrics_data import NOW, healing_make, mixed_healings

pytestmark = pytest.mark.django_db


@pytest.fixture
def at_now():
    with time_machine.travel(NOW, tick=False):
        yield NOW


@pytest.fixture
def mixed(at_now):
    return mixed_healings()


def _key(row):
    return (row["date"], row["issue_type"], row["recovery_action"], row["recovery_status"])


def test_statistics_daily_for_seven_days_matches_the_hand_computed_fixture(mixed):
    rows = statistics_daily(days=7, now=NOW)

    by_key = {_key(r): r for r in rows}
    assert list(by_key) == [
        ("2026-11-20", "STUCK_CONFIRMED", "RETRY_WORKFLOW", "SKIPPED"),
        ("2026-11-20", "STUCK_PENDING", "REASSIGN_VENDOR", "FAILED"),
        ("2026-11-20", "STUCK_PENDING", "REASSIGN_VENDOR", "IN_PROGRESS"),
        ("2026-11-20", "STUCK_PENDING", "REASSIGN_VENDOR", "SUCCESS"),
        ("2026-11-20", "STUCK_PROCESSING", "MANUAL_INTERVENTION", "MANUAL_REQUIRED"),
        ("2026-11-19", "STUCK_ACCEPTED", "REASSIGN_VENDOR", "FAILED"),
        ("2026-11-19", "STUCK_ACCEPTED", "REASSIGN_VENDOR", "SUCCESS"),
        ("2026-11-14", "STUCK_CONFIRMED", "RETRY_WORKFLOW", "SUCCESS"),
    ]  # newest day first; 11-13 is outside the window
    assert by_key[("2026-11-20", "STUCK_PENDING", "REASSIGN_VENDOR", "SUCCESS")] == {
        "date": "2026-11-20",
        "issue_type": "STUCK_PENDING",
        "recovery_action": "REASSIGN_VENDOR",
        "recovery_status": "SUCCESS",
        "total_cases": 3,
        "avg_recovery_time_minutes": 5.33,  # (120 + 240 + 600) / 3 s
        "successful_recoveries": 3,
        "failed_recoveries": 0,
        "skipped_recoveries": 0,
        "manual_interventions": 0,
        "active": 0,
        "p50_recovery_time_minutes": 4.0,  # 240 s
        "p95_recovery_time_minutes": 9.4,  # 240 + 0.9 * (600 - 240) = 564 s
        "admin_notifications": 0,
        "success_rate": 100.0,
    }
    failed = by_key[("2026-11-20", "STUCK_PENDING", "REASSIGN_VENDOR", "FAILED")]
    assert (failed["total_cases"], failed["failed_recoveries"]) == (1, 1)
    assert (failed["admin_notifications"], failed["success_rate"]) == (1, 0.0)
    assert failed["avg_recovery_time_minutes"] is None  # nothing recovered, nothing timed
    running = by_key[("2026-11-20", "STUCK_PENDING", "REASSIGN_VENDOR", "IN_PROGRESS")]
    assert (running["total_cases"], running["active"], running["success_rate"]) == (1, 1, None)
    # The day's four REASSIGN_VENDOR outcomes still add up to 75 %.
    today = [r for r in rows if r["date"] == "2026-11-20" and r["issue_type"] == "STUCK_PENDING"]
    assert sum(r["total_cases"] for r in today) == 5
    assert sum(r["successful_recoveries"] for r in today) == 3
    skipped = by_key[("2026-11-20", "STUCK_CONFIRMED", "RETRY_WORKFLOW", "SKIPPED")]
    assert skipped["skipped_recoveries"] == 1
    assert skipped["avg_recovery_time_minutes"] is None
    assert skipped["success_rate"] is None
    manual = by_key[("2026-11-20", "STUCK_PROCESSING", "MANUAL_INTERVENTION", "MANUAL_REQUIRED")]
    assert manual["manual_interventions"] == 1
    assert manual["success_rate"] == 0.0
    yesterday_failed = by_key[("2026-11-19", "STUCK_ACCEPTED", "REASSIGN_VENDOR", "FAILED")]
    yesterday_success = by_key[("2026-11-19", "STUCK_ACCEPTED", "REASSIGN_VENDOR", "SUCCESS")]
    assert (yesterday_failed["total_cases"], yesterday_failed["failed_recoveries"]) == (2, 2)
    assert yesterday_failed["admin_notifications"] == 2
    assert (yesterday_success["total_cases"], yesterday_success["successful_recoveries"]) == (1, 1)
    # finished after midnight, still 11-19
    assert yesterday_success["avg_recovery_time_minutes"] == 2.0
    first_day = by_key[("2026-11-14", "STUCK_CONFIRMED", "RETRY_WORKFLOW", "SUCCESS")]
    assert first_day["p50_recovery_time_minutes"] == first_day["p95_recovery_time_minutes"] == 1.5


def test_a_tie_of_outcomes_is_two_rows_never_a_vote(at_now):
    """Issue 20 item 5: 2 successes and 2 failures are not a "FAILED" group."""
    for status in ("SUCCESS", "FAILED", "SUCCESS", "FAILED"):
        healing_make(
            detected_at=NOW - timedelta(hours=1),
            issue_type="STUCK_PENDING",
            action="REASSIGN_VENDOR",
            status=status,
            seconds=60,
        )

    rows = statistics_daily(days=1, now=NOW)

    assert [
        (r["recovery_status"], r["total_cases"], r["successful_recoveries"], r["failed_recoveries"])
        for r in rows
    ] == [("FAILED", 2, 0, 2), ("SUCCESS", 2, 2, 0)]
    for row in rows:  # every row is coherent with its status
        assert (
            row["total_cases"]
            == row[
                {"SUCCESS": "successful_recoveries", "FAILED": "failed_recoveries"}[
                    row["recovery_status"]
                ]
            ]
        )


def test_statistics_values_are_plain_numbers(mixed):
    for row in statistics_daily(days=7, now=NOW):
        for key, value in row.items():
            if key in {"date", "issue_type", "recovery_action", "recovery_status"}:
                assert isinstance(value, str)
            else:
                assert value is None or type(value) in (int, float), (key, type(value))


@pytest.mark.parametrize(
    ("days", "dates"),
    [
        (1, {"2026-11-20"}),
        (2, {"2026-11-20", "2026-11-19"}),
        (7, {"2026-11-20", "2026-11-19", "2026-11-14"}),
        (8, {"2026-11-20", "2026-11-19", "2026-11-14", "2026-11-13"}),
    ],
)
def test_days_is_calendar_days_including_today(mixed, days, dates):
    assert {r["date"] for r in statistics_daily(days=days, now=NOW)} == dates


def test_window_start_rejects_zero_days():
    with pytest.raises(ValueError):
        window_start(days=0, now=NOW)


def test_statistics_by_issue_type(mixed):
    rows = {r["issue_type"]: r for r in statistics_by_issue_type(days=7, now=NOW)}

    assert rows["STUCK_PENDING"]["success_rate"] == 75.0
    assert rows["STUCK_PENDING"]["p50_recovery_time_minutes"] == 4.0
    assert rows["STUCK_PENDING"]["p95_recovery_time_minutes"] == 9.4
    assert rows["STUCK_ACCEPTED"]["success_rate"] == 33.33
    # 11-14's success counts, 11-13's does not; a SKIPPED one is not an attempt.
    assert rows["STUCK_CONFIRMED"]["total_cases"] == 2
    assert rows["STUCK_CONFIRMED"]["success_rate"] == 100.0
    assert rows["STUCK_PROCESSING"]["success_rate"] == 0.0


def test_statistics_by_vendor_worst_first(mixed):
    rows = statistics_by_vendor(days=7, now=NOW)

    assert [(r["vendor_name"], r["success_rate"]) for r in rows] == [
        ("Vendor B", 33.33),
        (None, 50.0),  # 1 success, 1 manual; the skipped one is not an attempt
        ("Vendor A", 75.0),
    ]
    assert rows[0]["vendor_id"] == mixed.vendor_b.pk
    assert rows[2]["p95_recovery_time_minutes"] == 9.4


def test_kpis_for_the_fixture(mixed):
    kpis = {k["name"]: k for k in kpis_evaluate(days=7, now=NOW)}

    # 5 success, 3 failed, 1 manual -> 9 attempted; 11 detected in the window.
    assert kpis["healing_success_rate"]["value"] == 55.56
    assert kpis["healing_success_rate"]["met"] is False
    assert kpis["avg_recovery_time_minutes"]["value"] == 3.9  # (120+240+600+120+90)/5 s
    assert kpis["avg_recovery_time_minutes"]["met"] is True
    assert kpis["manual_intervention_rate"]["value"] == 11.11
    assert kpis["manual_intervention_rate"]["met"] is False
    assert kpis["admin_notification_rate"]["value"] == 36.36  # 4 of 11
    assert kpis["admin_notification_rate"]["sample_size"] == 11
    for kpi in kpis.values():
        assert set(kpi) >= {"name", "value", "target", "comparison", "met"}


def _outcomes(at, *, success=0, failed=0, manual=0, skipped=0, seconds=60.0, notified=0):
    made = 0
    for status, n in (
        ("SUCCESS", success),
        ("FAILED", failed),
        ("MANUAL_REQUIRED", manual),
        ("SKIPPED", skipped),
    ):
        for _ in range(n):
            healing_make(
                detected_at=at,
                issue_type="STUCK_PENDING",
                action="MANUAL_INTERVENTION" if status == "MANUAL_REQUIRED" else "REASSIGN_VENDOR",
                status=status,
                seconds=seconds,
                notified=made < notified,
            )
            made += 1


def _kpi(name):
    return {k["name"]: k for k in kpis_evaluate(days=1, now=NOW)}[name]


@pytest.mark.parametrize(
    ("success", "failed", "manual", "met"),
    [
        (9, 1, 0, False),  # exactly 90 %: the target is "> 90 %"
        (10, 1, 0, True),  # 90.91 %
        (8, 1, 0, False),  # 88.89 %
        (18, 1, 1, False),  # manual counts in the denominator: 90 %
    ],
)
def test_success_rate_at_and_around_its_target(at_now, success, failed, manual, met):
    _outcomes(NOW - timedelta(hours=1), success=success, failed=failed, manual=manual)
    assert _kpi("healing_success_rate")["met"] is met


@pytest.mark.parametrize(
    ("seconds", "met"), [(299.0, True), (300.0, False), (301.0, False), (60.0, True)]
)
def test_average_recovery_time_at_and_around_five_minutes(at_now, seconds, met):
    _outcomes(NOW - timedelta(hours=1), success=2, seconds=seconds)
    kpi = _kpi("avg_recovery_time_minutes")
    assert kpi["value"] == round(seconds / 60, 2)
    assert kpi["met"] is met


@pytest.mark.parametrize(
    ("success", "manual", "met"), [(9, 1, False), (10, 1, True), (8, 1, False)]
)
def test_manual_intervention_rate_at_and_around_ten_percent(at_now, success, manual, met):
    _outcomes(NOW - timedelta(hours=1), success=success, manual=manual)
    assert _kpi("manual_intervention_rate")["met"] is met


@pytest.mark.parametrize(
    ("success", "skipped", "notified", "met"),
    [
        (20, 0, 1, False),  # 1 of 20 paged an admin = 5 %: the target is "< 5 %"
        (21, 0, 1, True),  # 4.76 %
        (19, 0, 1, False),  # 5.26 %
        (10, 10, 1, False),  # SKIPPED are detections too: 1 / 20
        (11, 10, 1, True),  # 1 / 21
    ],
)
def test_admin_notification_rate_at_and_around_five_percent(
    at_now, success, skipped, notified, met
):
    _outcomes(NOW - timedelta(hours=1), success=success, skipped=skipped, notified=notified)
    assert _kpi("admin_notification_rate")["met"] is met


def test_kpis_without_healings_are_not_judged(at_now):
    kpis = kpis_evaluate(days=1, now=NOW)
    assert [(k["value"], k["met"]) for k in kpis] == [(None, None)] * 4


def test_kpi_met_rejects_an_unknown_comparison():
    assert kpi_met(1.0, target=1.0, comparison="lt") is False
    with pytest.raises(ValueError):
        kpi_met(1.0, target=1.0, comparison="le")


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([], 0.5, None),
        ([7.0], 0.95, 7.0),
        ([120.0, 240.0, 600.0], 0.5, 240.0),
        ([120.0, 240.0, 600.0], 0.95, 564.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.5),
    ],
)
def test_percentile_interpolates_like_percentile_cont(values, fraction, expected):
    assert percentile(values, fraction) == expected


def test_stuck_orders_summary_counts_orders_past_each_rule(at_now):
    OrderFactory(status="PENDING", stuck_minutes=31)
    OrderFactory(status="PENDING", stuck_minutes=95)
    OrderFactory(status="PENDING", stuck_minutes=29)  # under 30 min
    OrderFactory(status="CONFIRMED", stuck_minutes=61)
    OrderFactory(status="SHIPPED", stuck_minutes=10_000)  # no rule

    summary = {s.status: s for s in stuck_orders_summary(now=datetime.now(tz=UTC))}

    assert (summary["PENDING"].count, summary["PENDING"].oldest_minutes) == (2, 95)
    assert (summary["CONFIRMED"].count, summary["CONFIRMED"].oldest_minutes) == (1, 61)
    assert (summary["ACCEPTED"].count, summary["ACCEPTED"].oldest_minutes) == (0, None)
    assert set(summary) == {"PENDING", "CONFIRMED", "ACCEPTED", "PROCESSING"}


def test_stuck_orders_summary_uses_detections_threshold_for_every_rule(at_now):
    """One definition of "past the threshold": the summary counts what
    detection finds, plus the orders detection leaves out because they are
    being healed or held for a person."""
    from django.utils import timezone

    from healing.detection import rules_enabled, stuck_orders_detect
    from healing.models import StuckRule
    from tests.factories import HealingActionFactory

    StuckRule.objects.filter(status="PENDING").update(threshold_minutes=40)
    StuckRule.objects.filter(status="PROCESSING").update(enabled=False)
    for status, minutes in (
        ("PENDING", 39),
        ("PENDING", 41),
        ("PENDING", 500),
        ("CONFIRMED", 61),
        ("PROCESSING", 900),
    ):
        OrderFactory(status=status, stuck_minutes=minutes)
    healed = OrderFactory(status="PENDING", stuck_minutes=90)
    HealingActionFactory(order=healed, lease_expires_at=timezone.now() + timedelta(minutes=5))
    now = datetime.now(tz=UTC)
    rules = rules_enabled()

    summary = {s.status: s.count for s in stuck_orders_summary(now=now, rules=rules)}
    detected: dict[str, int] = {}
    for item in stuck_orders_detect(now=now, rules=rules):
        detected[item.status] = detected.get(item.status, 0) + 1

    assert summary == {"PENDING": 3, "CONFIRMED": 1, "ACCEPTED": 0}
    assert detected == {"PENDING": 2, "CONFIRMED": 1}  # the one being healed is not detected
    oldest = {s.status: s.oldest_seconds for s in stuck_orders_summary(now=now, rules=rules)}
    assert oldest["PENDING"] == 500 * 60
