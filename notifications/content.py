"""How a notification reads on a channel: text, short text, fields, admin link.

The title, message and ``details`` snapshot come from the app that raised it
(for healing, ``healing.messages``); this module only renders them.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from notifications.channels import ChannelMessage

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
