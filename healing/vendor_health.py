"""The vendor panel's read (issue 18): health, circuit, orders, calendar, silences.

One call builds every vendor's row with a fixed number of queries (vendors,
circuits, open orders by vendor, recent failed messages, active silences and
what they hold, the stuck orders by vendor from detection), so the API and
the dashboard cost the same for ten vendors or a thousand.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count
from django.utils import timezone

from healing.detection import stuck_orders_detect
from healing.silence_models import Silence
from healing.silences import silences_active, silences_holding
from orders.calendars import CalendarInvalid, is_open
from orders.models import (
    OPEN_STATUSES,
    CircuitState,
    MessageStatus,
    Order,
    Vendor,
    VendorCircuit,
    VendorMessage,
)
from orders.vendor_time import vendor_calendar

LAST_FAILURES = 5
FAILURES_SINCE = timedelta(days=1)


@dataclass
class VendorHealth:
    vendor: Vendor
    circuit: VendorCircuit | None
    open_orders: int = 0
    stuck_orders: int = 0
    last_failures: list[dict[str, Any]] = field(default_factory=list)
    silences: list[dict[str, Any]] = field(default_factory=list)
    open_now: bool = True

    @property
    def state(self) -> str:
        return self.circuit.state if self.circuit else CircuitState.CLOSED

    @property
    def health(self) -> str:
        """healthy / degraded (failures, or half-open) / down (open)."""
        if self.state == CircuitState.OPEN:
            return "down"
        if self.state == CircuitState.HALF_OPEN or (self.circuit and self.circuit.failures):
            return "degraded"
        return "healthy"


def _silence_row(silence: Silence, holding: int) -> dict[str, Any]:
    return {
        "id": silence.pk,
        "ends_at": silence.ends_at,
        "comment": silence.comment,
        "holding": holding,
    }


def vendors_health(*, now: datetime | None = None) -> list[VendorHealth]:
    now = now or timezone.now()
    vendors = list(Vendor.objects.order_by("name", "id"))
    circuits = {c.vendor_id: c for c in VendorCircuit.objects.all()}
    open_counts = dict(
        Order.objects.filter(status__in=OPEN_STATUSES, vendor__isnull=False)
        .order_by()
        .values_list("vendor_id")
        .annotate(n=Count("id"))
    )
    stuck: dict[int, int] = defaultdict(int)
    for item in stuck_orders_detect(now=now):
        if item.vendor_id is not None:
            stuck[item.vendor_id] += 1
    failures: dict[int, list[dict[str, Any]]] = defaultdict(list)
    recent = (
        VendorMessage.objects.filter(
            status=MessageStatus.FAILED, created_at__gte=now - FAILURES_SINCE
        )
        .order_by("-created_at", "-id")
        .values_list("vendor_id", "created_at", "kind", "error")[: LAST_FAILURES * 50]
    )
    for vendor_id, created_at, kind, error in recent:
        if vendor_id is not None and len(failures[vendor_id]) < LAST_FAILURES:
            failures[vendor_id].append({"at": created_at, "kind": kind, "error": error})
    active = silences_active(now=now)
    holding = silences_holding(silences=active)
    rows = []
    for vendor in vendors:
        try:
            open_now = is_open(at=now, calendar=vendor_calendar(vendor))
        except CalendarInvalid:
            open_now = True
        rows.append(
            VendorHealth(
                vendor=vendor,
                circuit=circuits.get(vendor.pk),
                open_orders=open_counts.get(vendor.pk, 0),
                stuck_orders=stuck.get(vendor.pk, 0),
                last_failures=failures.get(vendor.pk, []),
                silences=[
                    _silence_row(s, holding.get(s.pk, 0))
                    for s in active
                    if s.vendor_id == vendor.pk
                ],
                open_now=open_now,
            )
        )
    return rows
