"""A hand-computed set of healings shared by the metrics, statistics and SQL tests.

``NOW`` is 2026-11-20 12:00 UTC; ``days=7`` covers 2026-11-14 00:00 .. NOW.

| # | day   | issue / action                   | outcome         | secs | vendor | notified |
|---|-------|----------------------------------|-----------------|------|--------|----------|
| 1 | 11-20 | STUCK_PENDING / REASSIGN_VENDOR  | SUCCESS         | 120  | A      |          |
| 2 | 11-20 | STUCK_PENDING / REASSIGN_VENDOR  | SUCCESS         | 240  | A      |          |
| 3 | 11-20 | STUCK_PENDING / REASSIGN_VENDOR  | SUCCESS         | 600  | A      |          |
| 4 | 11-20 | STUCK_PENDING / REASSIGN_VENDOR  | FAILED          | 300  | A      | yes      |
| 5 | 11-20 | STUCK_CONFIRMED / RETRY_WORKFLOW | SKIPPED         | 60   | -      |          |
| 6 | 11-20 | STUCK_PROCESSING / MANUAL_INTERV.| MANUAL_REQUIRED | 30   | -      | yes      |
| 7 | 11-20 | STUCK_PENDING / REASSIGN_VENDOR  | IN_PROGRESS     | -    | A      |          |
| 8 | 11-19 | STUCK_ACCEPTED / REASSIGN_VENDOR | SUCCESS (23:59 -> 00:01) | 120 | B |     |
| 9 | 11-19 | STUCK_ACCEPTED / REASSIGN_VENDOR | FAILED          | 60   | B      | yes      |
| 10| 11-19 | STUCK_ACCEPTED / REASSIGN_VENDOR | FAILED          | 60   | B      | yes      |
| 11| 11-14 | STUCK_CONFIRMED / RETRY_WORKFLOW | SUCCESS (00:00:00, first instant in) | 90 | - | |
| 12| 11-13 | STUCK_CONFIRMED / RETRY_WORKFLOW | SUCCESS (23:59:59, outside) | 90 | - |   |
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from healing.models import HealingAction
from orders.models import Vendor
from tests.factories import HealingActionFactory, OrderFactory, VendorFactory

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

_STATUS_FOR_ISSUE = {
    "STUCK_PENDING": "PENDING",
    "STUCK_CONFIRMED": "CONFIRMED",
    "STUCK_ACCEPTED": "ACCEPTED",
    "STUCK_PROCESSING": "PROCESSING",
}


def healing_make(
    *,
    detected_at: datetime,
    issue_type: str,
    action: str,
    status: str,
    seconds: float | None = None,
    vendor: Vendor | None = None,
    notified: bool = False,
) -> HealingAction:
    """One healing row on its own order, as the engine leaves it."""
    order = OrderFactory(status=_STATUS_FOR_ISSUE[issue_type], stuck_minutes=90)
    completed = None if seconds is None else detected_at + timedelta(seconds=seconds)
    return HealingActionFactory(
        order=order,
        issue_type=issue_type,
        issue_detected_at=detected_at,
        recovery_action=action,
        recovery_status=status,
        skip_reason="RECOVERED" if status == "SKIPPED" else "",
        recovery_attempted_at=detected_at if status != "PENDING" else None,
        completed_at=completed,
        recovery_duration_seconds=seconds,
        previous_vendor=vendor,
        admin_notified=notified,
        claim_token=None if completed else uuid.uuid4(),
        lease_expires_at=None if completed else detected_at + timedelta(minutes=10),
        created_at=detected_at,
        updated_at=completed or detected_at,
    )


@dataclass
class MixedHealings:
    vendor_a: Vendor
    vendor_b: Vendor
    rows: list[HealingAction]


def mixed_healings() -> MixedHealings:
    a, b = VendorFactory(name="Vendor A"), VendorFactory(name="Vendor B")
    t = datetime(2026, 11, 20, tzinfo=UTC)
    y = datetime(2026, 11, 19, tzinfo=UTC)
    P, C, AC, PR = "STUCK_PENDING", "STUCK_CONFIRMED", "STUCK_ACCEPTED", "STUCK_PROCESSING"
    RV, RW, MI = "REASSIGN_VENDOR", "RETRY_WORKFLOW", "MANUAL_INTERVENTION"
    specs = [
        (t.replace(hour=10), P, RV, "SUCCESS", 120, a, False),
        (t.replace(hour=10, minute=5), P, RV, "SUCCESS", 240, a, False),
        (t.replace(hour=10, minute=10), P, RV, "SUCCESS", 600, a, False),
        (t.replace(hour=10, minute=15), P, RV, "FAILED", 300, a, True),
        (t.replace(hour=9), C, RW, "SKIPPED", 60, None, False),
        (t.replace(hour=11), PR, MI, "MANUAL_REQUIRED", 30, None, True),
        (t.replace(hour=11, minute=50), P, RV, "IN_PROGRESS", None, a, False),
        (y.replace(hour=23, minute=59), AC, RV, "SUCCESS", 120, b, False),
        (y.replace(hour=8), AC, RV, "FAILED", 60, b, True),
        (y.replace(hour=9), AC, RV, "FAILED", 60, b, True),
        (datetime(2026, 11, 14, tzinfo=UTC), C, RW, "SUCCESS", 90, None, False),
        (datetime(2026, 11, 13, 23, 59, 59, tzinfo=UTC), C, RW, "SUCCESS", 90, None, False),
    ]
    rows = [
        healing_make(
            detected_at=at,
            issue_type=issue,
            action=action,
            status=status,
            seconds=secs,
            vendor=vendor,
            notified=notified,
        )
        for at, issue, action, status, secs, vendor, notified in specs
    ]
    return MixedHealings(vendor_a=a, vendor_b=b, rows=rows)
