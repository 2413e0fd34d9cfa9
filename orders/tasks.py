"""Thin tasks: send one message to a vendor and record it."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from orders import idempotency
from orders.gateway import DeliveryFailed, DeliveryRejected, OutboundMessage, get_gateway
from orders.models import Order, VendorMessage


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,  # a killed worker hands the message back (healing.E003)
    max_retries=5,
    autoretry_for=(DeliveryFailed,),
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
)
def vendor_message_send(self: Any, order_id: int, vendor_id: int, kind: str) -> str:
    """Deliver ``kind`` to the vendor if it still holds the order; every attempt is a row.

    A 5xx or timeout is retried with backoff (same ``webhook-id``); a 4xx is
    recorded and not retried.
    """
    order = Order.objects.select_related("vendor").filter(pk=order_id).first()
    if order is None or order.vendor_id != vendor_id or order.vendor is None:
        return "SKIPPED"
    message = OutboundMessage(
        order_id=order.pk,
        order_number=order.number,
        vendor_id=vendor_id,
        kind=kind,
        webhook_url=order.vendor.webhook_url,
    )
    try:
        delivery = get_gateway().send(message)
    except (DeliveryFailed, DeliveryRejected) as exc:
        VendorMessage.objects.bulk_create([exc.delivery.as_row()])
        if isinstance(exc, DeliveryRejected):
            return "REJECTED"
        raise
    VendorMessage.objects.bulk_create([delivery.as_row()])
    return delivery.status


@shared_task
def idempotency_keys_purge() -> int:
    """Delete expired Idempotency-Keys (hourly, ``BEAT_SCHEDULE``); how many went."""
    return idempotency.idempotency_keys_purge()
