"""What a failure notification tells an admin: everything needed to act."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from orders.models import Order

RECOMMENDED_MANUAL_ACTION: dict[str, str] = {
    "PENDING": "Find a vendor by hand and reassign the order, or cancel it with the buyer.",
    "CONFIRMED": "Call the vendor to accept the terms, or reassign the order.",
    "ACCEPTED": "Ask the vendor to start processing, or reassign the order.",
    "PROCESSING": "Check fulfilment with the vendor; ship, or cancel and refund.",
}


def _order_details(order: Order, now: datetime) -> dict[str, Any]:
    return {
        "order_id": order.pk,
        "order_number": order.number,
        "status": order.status,
        "vendor_id": order.vendor_id,
        "buyer_id": order.buyer_id,
        "payment_method": order.payment_method,
        "total": str(order.total),
        "stuck_since": order.stuck_since.isoformat(),
        "stuck_minutes": int((now - order.stuck_since).total_seconds() // 60),
    }


def healing_failed_content(
    *, order: Order, healing: Any, error: str, history: list[dict], now: datetime | None = None
) -> tuple[str, str, dict[str, Any]]:
    now = now or timezone.now()
    attempts = sum(1 for row in history if row["recovery_status"] != "SKIPPED")
    title = f"Healing failed: order {order.number} ({healing.issue_type})"
    message = (
        f"{healing.recovery_action} failed for order {order.number} "
        f"(status {order.status}, attempt {healing.attempt_number}, "
        f"{healing.retry_count} task retries): {error}"
    )
    details = {
        "order": _order_details(order, now),
        "issue_type": healing.issue_type,
        "recovery_action": healing.recovery_action,
        "healing_id": healing.pk,
        "attempts": attempts,
        "retry_count": healing.retry_count,
        "error_message": error,
        "history": history,
    }
    return title, message, details


def manual_required_content(
    *, order: Order, healing: Any, history: list[dict], now: datetime | None = None
) -> tuple[str, str, dict[str, Any]]:
    now = now or timezone.now()
    details = _order_details(order, now)
    recommended = RECOMMENDED_MANUAL_ACTION.get(order.status, "Review the order by hand.")
    attempts = sum(
        1 for row in history if row["recovery_status"] not in ("SKIPPED", "PENDING", "IN_PROGRESS")
    )
    title = f"Manual intervention required: order {order.number}"
    message = (
        f"Order {order.number} has been stuck in {order.status} for "
        f"{details['stuck_minutes']} minutes after {attempts} automatic attempts. "
        f"{recommended}"
    )
    return (
        title,
        message,
        {
            "order": details,
            "issue_type": healing.issue_type,
            "healing_id": healing.pk,
            "attempts": attempts,
            "stuck_minutes": details["stuck_minutes"],
            "current_status": order.status,
            "history": history,
            "recommended_action": recommended,
        },
    )
