"""Detection in vendor time: a rule's threshold counts the vendor's working minutes
(issue 18, docs/DECISIONS.md "Vendor time")."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection

from healing.detection import stuck_orders_detect
from healing.models import StuckRule
from orders import services as order_services
from orders.models import Order
from orders.vendor_time import due_at_recompute
from tests.factories import OrderFactory, VendorFactory

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = {str(day): [["08:00", "18:00"]] for day in range(5)}


def berlin(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def confirmed_at(when: datetime, vendor) -> Order:
    """An order its vendor confirmed at ``when`` (the CONFIRMED clock starts then)."""
    with time_machine.travel(when, tick=False):
        order = OrderFactory(status="PENDING", vendor=vendor)
        order_services.order_confirm(order=order, actor=order_services.Actor.vendor())
    order.refresh_from_db()
    return order


def stuck_ids(at: datetime) -> set[int]:
    return {item.order_id for item in stuck_orders_detect(now=at)}


@pytest.fixture
def office():
    return VendorFactory(time_zone="Europe/Berlin", working_hours=WEEKDAYS)


def test_default_vendor_has_no_due_time_and_wall_clock_thresholds():
    order = confirmed_at(berlin(2026, 12, 4, 17, 50), VendorFactory())
    assert order.due_at is None
    assert stuck_ids(berlin(2026, 12, 4, 18, 51)) == {order.pk}


def test_friday_evening_order_is_stuck_on_monday_0850_with_the_plain_ones(office):
    weekend = confirmed_at(berlin(2026, 12, 4, 17, 50), office)
    assert weekend.due_at == berlin(2026, 12, 7, 8, 50)
    # A vendor with no calendar, confirmed Monday 07:50: 60 wall minutes at 08:50.
    plain = confirmed_at(berlin(2026, 12, 7, 7, 50), VendorFactory())

    assert weekend.pk not in stuck_ids(berlin(2026, 12, 5, 10, 0))  # Saturday
    assert stuck_ids(berlin(2026, 12, 7, 8, 49)) == set()
    # Both in the same detection, the one a plain rule would make.
    assert stuck_ids(berlin(2026, 12, 7, 8, 51)) == {weekend.pk, plain.pk}
    found = {item.order_id: item for item in stuck_orders_detect(now=berlin(2026, 12, 7, 8, 51))}
    assert found[weekend.pk].recommended_action == "RETRY_WORKFLOW"


def test_a_holiday_behaves_like_a_closed_day():
    vendor = VendorFactory(
        time_zone="Europe/Berlin", working_hours=WEEKDAYS, holidays=["2026-12-07"]
    )
    order = confirmed_at(berlin(2026, 12, 4, 17, 50), vendor)
    assert order.pk not in stuck_ids(berlin(2026, 12, 7, 8, 51))
    assert order.pk not in stuck_ids(berlin(2026, 12, 8, 8, 49))
    assert order.pk in stuck_ids(berlin(2026, 12, 8, 8, 51))


@pytest.mark.parametrize("friday", [berlin(2026, 3, 27, 17, 50), berlin(2026, 10, 23, 17, 50)])
def test_dst_change_weekends(office, friday):
    order = confirmed_at(friday, office)
    monday = friday.replace(day=friday.day + 3)
    assert order.pk not in stuck_ids(monday.replace(hour=8, minute=49))
    assert order.pk in stuck_ids(monday.replace(hour=8, minute=51))


def test_a_calendar_change_recomputes_open_orders_in_bulk(django_capture_on_commit_callbacks):
    vendor = VendorFactory()
    order = confirmed_at(berlin(2026, 12, 4, 17, 50), vendor)
    assert order.due_at is None

    vendor.time_zone, vendor.working_hours = "Europe/Berlin", WEEKDAYS
    with django_capture_on_commit_callbacks(execute=True):
        vendor.save(update_fields=["time_zone", "working_hours"])
    order.refresh_from_db()
    assert order.due_at == berlin(2026, 12, 7, 8, 50)

    # Back to always open: wall-clock minutes again.
    vendor.working_hours = {}
    with django_capture_on_commit_callbacks(execute=True):
        vendor.save(update_fields=["working_hours"])
    order.refresh_from_db()
    assert order.due_at is None


def test_a_rule_change_recomputes_due_times(office, django_capture_on_commit_callbacks):
    order = confirmed_at(berlin(2026, 12, 4, 17, 50), office)
    rule = StuckRule.objects.get(status="CONFIRMED")
    rule.threshold_minutes = 30
    with django_capture_on_commit_callbacks(execute=True):
        rule.save(update_fields=["threshold_minutes"])
    order.refresh_from_db()
    assert order.due_at == berlin(2026, 12, 7, 8, 20)
    assert due_at_recompute(vendor_ids=[office.pk]) == 1


def test_reassignment_to_a_calendar_vendor_computes_its_due_time(office):
    with time_machine.travel(berlin(2026, 12, 4, 17, 50), tick=False):
        order = OrderFactory(status="PENDING", vendor=VendorFactory())
        order_services.order_reassign_vendor(
            order=order, vendor=office.pk, actor=order_services.Actor.healing(), reason="test"
        )
    order.refresh_from_db()
    # PENDING's threshold is 30 working minutes: 10 on Friday, 20 on Monday.
    assert order.due_at == berlin(2026, 12, 7, 8, 20)


@pytest.mark.postgres
def test_detection_of_due_orders_is_an_index_range_scan(office):
    confirmed_at(berlin(2026, 12, 4, 17, 50), office)
    rule = StuckRule.objects.get(status="CONFIRMED")
    from healing.detection import _candidates

    queryset = _candidates(rules=[rule], now=berlin(2026, 12, 7, 9, 0))
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = queryset.explain()
    assert "orders_open_due_idx" in plan and "orders_open_stuck_idx" in plan


def test_an_unreadable_calendar_counts_wall_minutes_and_never_blocks_the_order():
    vendor = VendorFactory(time_zone="Mars/Olympus", working_hours={"0": [["08:00", "18:00"]]})
    order = confirmed_at(berlin(2026, 12, 4, 17, 50), vendor)
    assert order.status == "CONFIRMED"
    assert order.pk in stuck_ids(berlin(2026, 12, 4, 18, 51))
