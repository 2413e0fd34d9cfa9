"""What a failure notification tells an admin: everything needed to act."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from notifications.channels import ChannelMessage
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
    # This healing's place on the ladder: attempts since the last manual resolution.
    attempts = healing.attempt_number
    title = f"Healing failed: order {order.number} ({healing.issue_type})"
    message = (
        f"{healing.recovery_action} failed for order {order.number} "
        f"(status {order.status}, attempt {healing.attempt_number}, "
        f"{healing.retry_count} task retries): {error}"
    )
    order_details = _order_details(order, now)
    recommended = RECOMMENDED_MANUAL_ACTION.get(order.status, "Review the order by hand.")
    details = {
        "order": order_details,
        "issue_type": healing.issue_type,
        "recovery_action": healing.recovery_action,
        "healing_id": healing.pk,
        "attempts": attempts,
        "retry_count": healing.retry_count,
        "error_message": error,
        "stuck_minutes": order_details["stuck_minutes"],
        "current_status": order.status,
        "history": history,
        "recommended_action": (
            "Automation tries the next step of the ladder on the next cycle. "
            f"If it keeps failing: {recommended}"
        ),
    }
    return title, message, details


def manual_required_content(
    *, order: Order, healing: Any, history: list[dict], now: datetime | None = None
) -> tuple[str, str, dict[str, Any]]:
    now = now or timezone.now()
    details = _order_details(order, now)
    recommended = RECOMMENDED_MANUAL_ACTION.get(order.status, "Review the order by hand.")
    # The automatic attempts before this escalation (since the last resolution).
    attempts = healing.attempt_number - 1
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
            "recovery_action": healing.recovery_action,
            "healing_id": healing.pk,
            "error_message": next(
                (row["error_message"] for row in history if row.get("error_message")), ""
            ),
            "attempts": attempts,
            "stuck_minutes": details["stuck_minutes"],
            "current_status": order.status,
            "history": history,
            "recommended_action": recommended,
        },
    )


# --- System conditions ----------------------------------------------------------


def failure_rate_content(
    *, rate: float, failed: int, total: int, threshold: float, window_minutes: int, warning: bool
) -> tuple[str, str, dict[str, Any]]:
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
) -> tuple[str, str, dict[str, Any]]:
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
    *, vendor_id: int, vendor_name: str, timeouts: int, day: Any
) -> tuple[str, str, dict[str, Any]]:
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


# --- What the channels send ---------------------------------------------------------


def notification_admin_url(notification_id: int) -> str:
    # Built from ADMIN_URL (what config/urls mounts the admin on) rather than
    # reverse(): an alert must go out even if some other URL pattern breaks
    # reversing for the whole project.
    admin_path = settings.ADMIN_URL.strip("/")
    path = f"/{admin_path}/notifications/adminnotification/{notification_id}/change/"
    return f"{settings.NOTIFICATION_ADMIN_BASE_URL.rstrip('/')}{path}"


def _history_lines(history: list[dict]) -> list[str]:
    lines = []
    for row in history[:10]:
        error = f": {row['error_message']}" if row.get("error_message") else ""
        lines.append(
            f"- {row.get('issue_detected_at', '')} {row.get('recovery_action', '')} "
            f"{row.get('recovery_status', '')}{error}"
        )
    return lines


def notification_text(notification: Any) -> str:
    """A plain-text rendering of a notification: message, facts, history."""
    details = notification.details or {}
    lines = [notification.message, ""]
    order = details.get("order") or {}
    if order:
        lines.append(
            f"Order {order.get('order_number')} (id {order.get('order_id')}): status "
            f"{details.get('current_status', order.get('status'))}, stuck "
            f"{details.get('stuck_minutes', order.get('stuck_minutes'))} min, vendor "
            f"{order.get('vendor_id')}, {order.get('payment_method')} {order.get('total')}"
        )
        lines.append(
            f"Issue {details.get('issue_type')}, action {details.get('recovery_action')}, "
            f"attempts {details.get('attempts')}"
        )
        if details.get("error_message"):
            lines.append(f"Error: {details['error_message']}")
    else:
        for key, value in details.items():
            if key not in ("alert", "recommended_action") and not isinstance(value, dict | list):
                lines.append(f"{key.replace('_', ' ').capitalize()}: {value}")
    if details.get("recommended_action"):
        lines.append(f"Recommended: {details['recommended_action']}")
    if notification.occurrences > 1:
        lines.append(
            f"Occurred {notification.occurrences} times, last {notification.last_occurred_at}"
        )
    history = details.get("history") or []
    if history:
        lines += ["", "Healing history (newest first):", *_history_lines(history)]
    return "\n".join(lines).strip()


def notification_message(*, notification: Any, round: int = 0) -> ChannelMessage:
    details = notification.details or {}
    order = details.get("order") or {}
    fields = {"Severity": notification.severity, "Type": notification.notification_type}
    if order:
        fields["Order"] = str(order.get("order_number"))
        fields["Status"] = str(details.get("current_status", order.get("status")))
        fields["Attempts"] = str(details.get("attempts"))
    if notification.occurrences > 1:
        fields["Occurrences"] = str(notification.occurrences)
    url = notification_admin_url(notification.pk)
    reminder = f"Reminder {round}: " if round else ""
    return ChannelMessage(
        notification_id=notification.pk,
        notification_type=notification.notification_type,
        severity=notification.severity,
        title=notification.title,
        text=notification_text(notification),
        short_text=f"[{notification.severity}] {reminder}{notification.title} {url}"[:320],
        url=url,
        round=round,
        fields=fields,
    )
