"""Outbound webhooks as Standard Webhooks (https://www.standardwebhooks.com).

Every message carries ``webhook-id`` (stable across retries of the same
message), ``webhook-timestamp`` (this attempt) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of id.timestamp.body>``, one per valid secret,
space-separated, so a vendor rolling over to a rotated secret verifies
with either). The body is ``{"type", "timestamp", "data"}``.

Reads the order and the vendor's secrets; the gateway calls it outside any
transaction, just before the HTTP request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from orders.constants import DEFAULT_STUCK_THRESHOLDS_MINUTES
from orders.credentials import vendor_signing_secrets
from orders.errors import DomainError
from orders.models import MessageKind, Order

EVENT_TYPE: dict[str, str] = {
    MessageKind.OFFER: "order.offer",
    MessageKind.WITHDRAW: "order.withdraw",
    MessageKind.CONFIRM_REQUEST: "order.confirm_request",
    MessageKind.ACCEPT_REQUEST: "order.accept_request",
    MessageKind.START_REQUEST: "order.start_request",
    MessageKind.FULFILMENT_POLL: "order.fulfilment_poll",
}


class VendorNotSignable(DomainError):
    code = "vendor_not_signable"


@dataclass(frozen=True)
class SignedWebhook:
    headers: dict[str, str]
    body: str


def webhook_message_id(
    *, order_id: int, kind: str, vendor_id: int | None, healing_id: int | None
) -> str:
    """Derived, not random: every retry of one message gets the same id.

    A healing sends each kind at most once per vendor; without a healing an
    order sends a kind once per vendor (an order never returns to a vendor).
    """
    source = f"h{healing_id}" if healing_id is not None else f"o{order_id}"
    return f"msg_{source}_{kind.lower()}_v{vendor_id or 0}"


def vendor_deadline(*, order: Order) -> datetime | None:
    """When the order counts as stuck if the vendor does nothing."""
    minutes = DEFAULT_STUCK_THRESHOLDS_MINUTES.get(order.status)
    if minutes is None:
        return None
    return order.stuck_since + timedelta(minutes=minutes)


def webhook_payload(*, order: Order, kind: str, now: datetime) -> dict[str, Any]:
    deadline = vendor_deadline(order=order)
    return {
        "type": EVENT_TYPE[kind],
        "timestamp": now.isoformat(),
        "data": {
            "order_id": order.pk,
            "order_number": order.number,
            "status": order.status,
            "amount": str(order.total),
            "currency": order.currency,
            "act_by": deadline.isoformat() if deadline else None,
        },
    }


def webhook_sign(
    *, message_id: str, body: str, secrets: list[str], now: datetime
) -> dict[str, str]:
    signatures = [
        Webhook(secret).sign(msg_id=message_id, timestamp=now, data=body) for secret in secrets
    ]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
    }


def webhook_build(
    *,
    order_id: int,
    kind: str,
    vendor_id: int | None,
    message_id: str,
    now: datetime | None = None,
) -> SignedWebhook:
    """The signed request for one message attempt (a fresh timestamp each time)."""
    now = now or timezone.now()
    order = Order.objects.get(pk=order_id)
    body = json.dumps(webhook_payload(order=order, kind=kind, now=now), separators=(",", ":"))
    secrets = vendor_signing_secrets(vendor_id=vendor_id, now=now) if vendor_id else []
    if not secrets:
        # Invariant 11: nothing leaves unsigned. Not worth a retry either.
        raise VendorNotSignable(
            f"vendor {vendor_id} has no webhook signing secret: "
            "run `manage.py vendor_credentials --vendor ID`"
        )
    return SignedWebhook(
        headers=webhook_sign(message_id=message_id, body=body, secrets=secrets, now=now),
        body=body,
    )
