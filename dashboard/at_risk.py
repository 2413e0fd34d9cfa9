"""Orders about to be stuck: past 80 % of their rule's threshold, not past it (issue 19).

Two index range scans per enabled rule, as detection's (healing.detection):

* wall-clock orders (no due time): ``status = S and due_at is null and
  stuck_since`` between ``now - threshold`` and ``now - 0.8 * threshold`` —
  orders_open_stuck_idx;
* vendor-time orders (a vendor calendar gave them a due time): ``status = S
  and due_at >= now`` (not due yet) and at least 0.8 * threshold wall-clock
  minutes old (working minutes are never more than wall minutes), then their
  working minutes so far are counted with the vendor's calendar.

The cost follows the orders near their threshold, not the size of the table.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from django.urls import reverse

from healing.detection import rules_enabled
from healing.models import StuckRule
from orders.calendars import working_minutes_between
from orders.models import Order, Vendor
from orders.vendor_time import vendor_calendar

AT_RISK_SHARE = 0.8
# Rows read per rule and part; past it the panel says "at least".
SCAN_LIMIT = 5_000
LIST_ROWS = 15

_COLUMNS = ("id", "number", "status", "vendor_id", "stuck_since", "due_at")


def _wall_clock(rule: StuckRule, now: datetime) -> list[tuple]:
    threshold = timedelta(minutes=rule.threshold_minutes)
    return list(
        Order.objects.filter(
            status=rule.status,
            due_at__isnull=True,
            stuck_since__gte=now - threshold,
            stuck_since__lt=now - threshold * AT_RISK_SHARE,
        )
        .order_by("stuck_since", "id")
        .values_list(*_COLUMNS)[:SCAN_LIMIT]
    )


def _vendor_time(rule: StuckRule, now: datetime) -> list[tuple]:
    threshold = timedelta(minutes=rule.threshold_minutes)
    return list(
        Order.objects.filter(
            status=rule.status,
            due_at__gte=now,
            stuck_since__lt=now - threshold * AT_RISK_SHARE,
        )
        .order_by("due_at", "id")
        .values_list(*_COLUMNS)[:SCAN_LIMIT]
    )


def _elapsed_in_vendor_time(
    rows: list[tuple], *, now: datetime, calendars: dict[int, Any]
) -> list[tuple[tuple, float]]:
    missing = {row[3] for row in rows} - set(calendars)
    for vendor in Vendor.objects.filter(pk__in=missing):
        calendars[vendor.pk] = vendor_calendar(vendor)
    out = []
    for row in rows:
        vendor_id = row[3]
        minutes = working_minutes_between(start=row[4], end=now, calendar=calendars.get(vendor_id))
        out.append((row, minutes))
    return out


def at_risk(*, now: datetime, limit: int = LIST_ROWS) -> dict[str, Any]:
    """Counts by status and by vendor, and the orders nearest their threshold."""
    found: list[dict[str, Any]] = []
    truncated = False
    calendars: dict[int, Any] = {}
    for rule in rules_enabled():
        wall = _wall_clock(rule, now)
        timed = _vendor_time(rule, now)
        truncated = truncated or len(wall) >= SCAN_LIMIT or len(timed) >= SCAN_LIMIT
        elapsed = [(row, (now - row[4]).total_seconds() / 60) for row in wall]
        elapsed += _elapsed_in_vendor_time(timed, now=now, calendars=calendars)
        for row, minutes in elapsed:
            if not rule.threshold_minutes * AT_RISK_SHARE <= minutes < rule.threshold_minutes:
                continue
            found.append(
                {
                    "order_id": row[0],
                    "number": row[1],
                    "status": row[2],
                    "vendor_id": row[3],
                    "elapsed_minutes": round(minutes, 1),
                    "threshold_minutes": rule.threshold_minutes,
                    "minutes_left": round(rule.threshold_minutes - minutes, 1),
                    "vendor_time": row[5] is not None,
                }
            )
    found.sort(key=lambda r: (r["minutes_left"], r["order_id"]))
    names = dict(
        Vendor.objects.filter(pk__in={r["vendor_id"] for r in found if r["vendor_id"]}).values_list(
            "id", "name"
        )
    )
    for item in found:
        item["vendor"] = names.get(item["vendor_id"], "—") if item["vendor_id"] else "no vendor"
    for item in found[:limit]:
        item["url"] = reverse("dashboard:order", args=[item["order_id"]])
    by_status = Counter(r["status"] for r in found)
    by_vendor = Counter(r["vendor"] for r in found)
    return {
        "total": len(found),
        "truncated": truncated,
        "share_percent": round(AT_RISK_SHARE * 100),
        "by_status": [{"status": s, "count": n} for s, n in sorted(by_status.items())],
        "by_vendor": [{"vendor": v, "count": n} for v, n in by_vendor.most_common(10)],
        "orders": found[:limit],
    }
