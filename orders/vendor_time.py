"""Each open order's due time in its vendor's working minutes ("Vendor time").

``orders.services`` calls ``order_due_at`` when an order's stuck clock starts;
``due_at_recompute`` rewrites the due times of open orders in bulk when a
vendor's calendar or a threshold changes. A vendor with no calendar (the
default) gets no due time: detection then reads the wall-clock stuck clock,
exactly as before calendars, and the heal path pays no extra statement.

The thresholds belong to the healing engine, which orders does not import:
healing registers where to read them (``thresholds_register``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from django.db.models import Q

from orders.calendars import Calendar, CalendarInvalid, calendar_build, due_at_add
from orders.models import OPEN_STATUSES, Order, Vendor

logger = logging.getLogger("orders")

ThresholdSource = Callable[[str], int | None]

_threshold_source: list[ThresholdSource] = []
RECOMPUTE_BATCH = 2000


def thresholds_register(source: ThresholdSource) -> None:
    """Where an open status's threshold (minutes) is read; the healing app sets it."""
    _threshold_source[:] = [source]


def threshold_minutes(status: str) -> int | None:
    return _threshold_source[0](status) if _threshold_source else None


def vendor_calendar(vendor: Vendor) -> Calendar | None:
    """The vendor's calendar; an unreadable one counts as always open (logged),
    so a typo in the admin never stops the vendor's orders from changing."""
    try:
        return calendar_build(
            time_zone=vendor.time_zone,
            working_hours=vendor.working_hours,
            holidays=vendor.holidays,
        )
    except CalendarInvalid as exc:
        logger.warning(
            "vendor calendar unreadable: wall-clock thresholds",
            extra={"vendor_id": vendor.pk, "error": str(exc)},
        )
        return None


def _has_calendar(vendor: Vendor) -> bool:
    return bool(vendor.working_hours or vendor.holidays)


def order_due_at(
    *, status: str, vendor_id: int | None, start: datetime, vendor: Vendor | None = None
) -> datetime | None:
    """When an order entering ``status`` at ``start`` becomes stuck, in vendor time.

    None for a vendor without a calendar. ``vendor`` is the vendor row when the
    caller has it (the heal path always has), so no statement is spent on it.
    """
    if vendor_id is None or status not in OPEN_STATUSES:
        return None
    if vendor is None or vendor.pk != vendor_id:
        vendor = (
            Vendor.objects.filter(pk=vendor_id)
            .only("time_zone", "working_hours", "holidays")
            .first()
        )
        if vendor is None:
            return None
    if not _has_calendar(vendor):
        return None
    minutes = threshold_minutes(status)
    if minutes is None:
        return None
    return due_at_add(start=start, minutes=minutes, calendar=vendor_calendar(vendor))


def due_at_recompute(
    *, vendor_ids: Iterable[int] | None = None, statuses: Iterable[str] | None = None
) -> int:
    """Recompute the due time of open orders (of these vendors / in these statuses).

    Orders of vendors with a calendar get their due time from their current
    stuck clock; the others lose theirs (wall-clock minutes again). Works in
    batches of ids; returns the number of orders written.
    """
    vendors = Vendor.objects.all()
    if vendor_ids is not None:
        vendors = vendors.filter(pk__in=list(vendor_ids))
    with_calendar = {
        vendor.pk: vendor
        for vendor in vendors.only("time_zone", "working_hours", "holidays")
        if _has_calendar(vendor)
    }
    orders = Order.objects.filter(status__in=list(statuses or OPEN_STATUSES))
    if vendor_ids is not None:
        orders = orders.filter(vendor_id__in=list(vendor_ids))
    # Orders whose vendor has no calendar (any more) go back to wall-clock minutes.
    written = (
        orders.filter(due_at__isnull=False)
        .filter(~Q(vendor_id__in=list(with_calendar)) | Q(vendor_id__isnull=True))
        .update(due_at=None)
    )
    calendars = {pk: vendor_calendar(vendor) for pk, vendor in with_calendar.items()}
    thresholds: dict[str, int | None] = {}
    pending = orders.filter(vendor_id__in=list(with_calendar)).order_by("id")
    last_id = 0
    while True:
        batch = list(
            pending.filter(id__gt=last_id).only("id", "status", "vendor_id", "stuck_since")[
                :RECOMPUTE_BATCH
            ]
        )
        if not batch:
            return written
        for order in batch:
            if order.status not in thresholds:
                thresholds[order.status] = threshold_minutes(order.status)
            minutes = thresholds[order.status]
            order.due_at = (
                None
                if minutes is None or order.vendor_id is None
                else due_at_add(
                    start=order.stuck_since, minutes=minutes, calendar=calendars[order.vendor_id]
                )
            )
        Order.objects.bulk_update(batch, ["due_at"])
        written += len(batch)
        last_id = batch[-1].pk
