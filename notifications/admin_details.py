"""How a notification's details read on its admin page.

The details are a JSON snapshot taken when the notification was raised: ids
and ISO timestamps. Here they become names linked to their admin pages and
dates in the admin's time zone; every value is escaped (format_html).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.urls import reverse
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from orders.models import Buyer, Vendor


def _dl(rows: list[tuple[str, Any]]) -> SafeString:
    return format_html(
        "<dl>{}</dl>",
        format_html_join("", "<dt><b>{}</b></dt><dd>{}</dd>", ((k, v) for k, v in rows if v)),
    )


def timestamp_display(value: Any, *, fmt: str = "j M Y, H:i:s T") -> Any:
    """A datetime, or the ISO string a notification's details keep, as people read
    it; any other value is returned as it is."""
    if isinstance(value, str):
        try:
            parsed = parse_datetime(value)
        except ValueError:
            parsed = None
        if parsed is None:
            return value
        value = parsed
    if not isinstance(value, datetime):
        return value
    if timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return date_format(timezone.localtime(value), fmt)


def _party_display(model: type[Vendor] | type[Buyer], kind: str, party_id: Any) -> str:
    """A vendor or buyer of the details snapshot by name, linked to its admin page."""
    if party_id in (None, ""):
        return ""
    party = model.objects.filter(pk=party_id).only("name").first()
    if party is None:
        return f"id {party_id} (no longer exists)"
    url = reverse(f"admin:orders_{kind}_change", args=[party.pk])
    return format_html('<a href="{}">{}</a>', url, party.name)


def details_html(raw: dict | None) -> str:
    details = dict(raw or {})
    order = details.pop("order", None) or {}
    history = details.pop("history", None) or []
    parts = []
    if order:
        parts.append(
            _dl(
                [
                    ("Order", f"{order.get('order_number')} (id {order.get('order_id')})"),
                    ("Status", details.pop("current_status", order.get("status"))),
                    (
                        "Stuck",
                        f"{order.get('stuck_minutes')} min since "
                        f"{timestamp_display(order.get('stuck_since'))}",
                    ),
                    ("Vendor", _party_display(Vendor, "vendor", order.get("vendor_id"))),
                    ("Buyer", _party_display(Buyer, "buyer", order.get("buyer_id"))),
                    ("Payment", f"{order.get('payment_method')} {order.get('total')}"),
                ]
            )
        )
        details.pop("stuck_minutes", None)
    parts.append(
        _dl(
            [
                (key.replace("_", " ").capitalize(), timestamp_display(value))
                for key, value in details.items()
                if not isinstance(value, dict | list)
            ]
        )
    )
    if history:
        parts.append(
            format_html(
                "<table><thead><tr><th>Healing</th><th>Detected</th><th>Action</th>"
                "<th>Status</th><th>Retries</th><th>Error</th></tr></thead>"
                "<tbody>{}</tbody></table>",
                format_html_join(
                    "",
                    '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td>'
                    "<td>{}</td><td>{}</td></tr>",
                    (
                        (
                            reverse("admin:healing_healingaction_change", args=[row["id"]]),
                            row["id"],
                            timestamp_display(row.get("issue_detected_at", "")),
                            row.get("recovery_action", ""),
                            row.get("recovery_status", "")
                            + (f" ({row['skip_reason']})" if row.get("skip_reason") else ""),
                            row.get("retry_count", ""),
                            row.get("error_message", ""),
                        )
                        for row in history
                        if "id" in row
                    ),
                ),
            )
        )
    return format_html("{}", format_html_join("", "{}", ((p,) for p in parts)))
