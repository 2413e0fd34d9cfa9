"""What a healing notification tells an admin: everything needed to act.

Texts only; ``healing.events`` decides when they are raised. Each function
returns ``(title, message, details)``; ``details`` is the JSON snapshot stored
on the notification, taken after the healing's outcome is written.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from healing.models import ATTEMPT_STATUSES, HealingAction, Trigger
from orders.models import Order

Content = tuple[str, str, dict[str, Any]]

RECOMMENDED_MANUAL_ACTION: dict[str, str] = {
    "PENDING": "Find a vendor by hand and reassign the order, or cancel it with the buyer.",
    "CONFIRMED": "Call the vendor to accept the terms, or reassign the order.",
    "ACCEPTED": "Ask the vendor to start processing, or reassign the order.",
    "PROCESSING": "Check fulfilment with the vendor; ship, or cancel and refund.",
}

# Healings an operator asked for, as opposed to the ones automation started.
OPERATOR_TRIGGERS = frozenset({Trigger.API, Trigger.OPERATOR, Trigger.REDRIVE, Trigger.CLI})


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


def _recommended(order: Order) -> str:
    return RECOMMENDED_MANUAL_ACTION.get(order.status, "Review the order by hand.")


def healing_failed_content(
    *, healing: HealingAction, error: str, history: list[dict[str, Any]], now: datetime
) -> Content:
    order = healing.order
    title = f"Healing failed: order {order.number} ({healing.issue_type})"
    message = (
        f"{healing.recovery_action} failed for order {order.number} "
        f"(status {order.status}, attempt {healing.attempt_number}, "
        f"{healing.retry_count} task retries): {error}"
    )
    order_details = _order_details(order, now)
    details = {
        "order": order_details,
        "issue_type": healing.issue_type,
        "recovery_action": healing.recovery_action,
        "recovery_status": healing.recovery_status,
        "healing_id": healing.pk,
        "trigger": healing.trigger,
        "attempts": healing.attempt_number,
        "retry_count": healing.retry_count,
        "error_message": error,
        "stuck_minutes": order_details["stuck_minutes"],
        "current_status": order.status,
        "history": history,
        "recommended_action": (
            "Automation tries the next step of the ladder on the next cycle. "
            f"If it keeps failing: {_recommended(order)}"
        ),
    }
    return title, message, details


def _attempts_in_words(
    history: list[dict[str, Any]], *, healing: HealingAction
) -> tuple[int, int, str]:
    """(automatic, operator, words): the attempts before this escalation, by who asked.

    The count is the ladder's (``attempt_number - 1``: attempts since the last
    manual resolution); ``history`` (newest first) says which of them an
    operator requested.
    """
    total = max(healing.attempt_number - 1, 0)
    earlier = [
        row
        for row in history
        if row["id"] != healing.pk and row["recovery_status"] in ATTEMPT_STATUSES
    ][:total]
    operator = sum(1 for row in earlier if row.get("trigger") in OPERATOR_TRIGGERS)
    automatic = total - operator
    parts = [f"{automatic} automatic attempt{'s' if automatic != 1 else ''}"]
    if operator:
        parts.append(f"{operator} operator-requested heal{'s' if operator != 1 else ''}")
    return automatic, operator, " and ".join(parts)


def manual_intervention_content(
    *, healing: HealingAction, history: list[dict[str, Any]], now: datetime
) -> Content:
    order = healing.order
    details = _order_details(order, now)
    automatic, operator, attempts_words = _attempts_in_words(history, healing=healing)
    title = f"Manual intervention required: order {order.number}"
    if healing.trigger in OPERATOR_TRIGGERS:
        opening = (
            f"An operator asked for manual intervention on order {order.number} "
            f"({order.status} for {details['stuck_minutes']} minutes)"
        )
    else:
        opening = (
            f"Order {order.number} has been stuck in {order.status} for "
            f"{details['stuck_minutes']} minutes"
        )
    message = f"{opening} after {attempts_words}. {_recommended(order)}"
    return (
        title,
        message,
        {
            "order": details,
            "issue_type": healing.issue_type,
            "recovery_action": healing.recovery_action,
            "recovery_status": healing.recovery_status,
            "healing_id": healing.pk,
            "trigger": healing.trigger,
            "error_message": next(
                (row["error_message"] for row in history if row.get("error_message")), ""
            ),
            "attempts": automatic + operator,
            "automatic_attempts": automatic,
            "operator_attempts": operator,
            "stuck_minutes": details["stuck_minutes"],
            "current_status": order.status,
            "history": history,
            "recommended_action": _recommended(order),
        },
    )


def guard_tripped_content(
    *,
    cycle_id: int,
    stuck: int,
    open_orders: int,
    min_stuck: int,
    max_share: float,
    by_action: dict[str, int],
) -> Content:
    title = f"Blast-radius guard tripped: {stuck} stuck orders"
    message = (
        f"{stuck} of {open_orders} open orders are stuck ({stuck / open_orders:.0%}). "
        "Automatic reassignment, cancellation and escalation are paused; workflow retries "
        "continue. Check the vendor gateway and vendor systems before resolving."
    )
    details = {
        "alert": "guard",
        "cycle_id": cycle_id,
        "stuck_orders": stuck,
        "open_orders": open_orders,
        "min_stuck": min_stuck,
        "max_share": max_share,
        "by_action": by_action,
    }
    return title, message, details


def failure_rate_content(
    *, rate: float, failed: int, total: int, threshold: float, window_minutes: int, warning: bool
) -> Content:
    limit = threshold / 2 if warning else threshold
    kind = "Early warning: healing failure rate rising" if warning else "Healing failure rate high"
    title = f"{kind}: {rate:.0%} over {window_minutes} min"
    message = (
        f"{failed} of {total} healings completed in the last {window_minutes} minutes failed or "
        f"needed an admin ({rate:.1%}, above {limit:.0%}). Check the vendor gateway, vendor "
        "capacity and recent rule changes."
    )
    return (
        title,
        message,
        {
            "alert": "failure_rate_warning" if warning else "failure_rate",
            "failure_rate": round(rate, 4),
            "failed": failed,
            "total": total,
            "threshold": threshold,
            "window_minutes": window_minutes,
            "recommended_action": "Look at the failed healings' error messages in the admin.",
        },
    )


def cycle_late_content(
    *, last_cycle_at: datetime, interval_seconds: int, now: datetime, down: bool
) -> Content:
    minutes = int((now - last_cycle_at).total_seconds() // 60)
    if down:
        title = f"No healing cycle for {minutes} min: beat or the cycle job is down"
        message = (
            f"The last healing cycle started {minutes} minutes ago, more than three "
            f"{interval_seconds // 60}-minute intervals. Stuck orders are not being healed. "
            "Check celery beat, the worker on the default queue, and the periodic task."
        )
    else:
        title = f"Healing cycle late: last one {minutes} min ago"
        message = (
            f"The last healing cycle started {minutes} minutes ago, two "
            f"{interval_seconds // 60}-minute intervals late."
        )
    return (
        title,
        message,
        {
            "alert": "beat_down" if down else "cycle_late",
            "last_cycle_at": last_cycle_at.isoformat(),
            "minutes_since_last_cycle": minutes,
            "interval_seconds": interval_seconds,
            "recommended_action": "Check that celery beat and a worker are running.",
        },
    )


def vendor_timeouts_content(
    *, vendor_id: int, vendor_name: str, timeouts: int, day: date
) -> Content:
    title = f"Vendor {vendor_name} let {timeouts} orders get stuck today"
    message = (
        f"Orders held by vendor {vendor_name} (id {vendor_id}) were detected stuck {timeouts} "
        f"times on {day}. Consider contacting the vendor or lowering its capacity."
    )
    return (
        title,
        message,
        {
            "alert": "vendor_timeouts",
            "vendor_id": vendor_id,
            "vendor_name": vendor_name,
            "timeouts": timeouts,
            "day": str(day),
        },
    )
