"""The vendor gateway: one interface for every message we send a vendor.

Backends (setting ``VENDOR_GATEWAY_BACKEND``):

- ``record``: delivers nothing, succeeds at once; the message row is the record.
- ``webhook``: a signed HTTP POST (Standard Webhooks, ``orders.webhooks``) to
  the vendor's ``webhook_url``. A 5xx, a timeout or a dropped connection is
  transient (``DeliveryFailed``, retried); any other non-2xx answer is the
  vendor refusing that message for good (``DeliveryRejected``, not retried).
- ``simulated``: answers after ``VENDOR_GATEWAY_SIM_LATENCY_MS`` and fails a
  share ``VENDOR_GATEWAY_SIM_FAILURE_RATE`` of calls (demo and benchmark); a
  message that gets through to a vendor with a ``webhook_url`` is then
  delivered as the real signed webhook (the demo's vendor desk).

A gateway writes nothing to the database (the webhook backend reads the order
and the vendor's signing secret): callers record every message as a
``VendorMessage`` row in their own transaction, so no network call happens
while a row lock is held.
"""

from __future__ import annotations

import functools
import random
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import requests
from django.conf import settings
from django.utils import timezone

from orders.errors import DomainError, GatewayError
from orders.models import MessageKind, MessageStatus, OrderStatus, VendorMessage

# The workflow step of each open status: what we ask the vendor to do next.
WORKFLOW_STEP: dict[str, str] = {
    OrderStatus.PENDING: MessageKind.CONFIRM_REQUEST,
    OrderStatus.CONFIRMED: MessageKind.ACCEPT_REQUEST,
    OrderStatus.ACCEPTED: MessageKind.START_REQUEST,
    OrderStatus.PROCESSING: MessageKind.FULFILMENT_POLL,
    OrderStatus.SHIPPED: MessageKind.FULFILMENT_POLL,
}


@dataclass(frozen=True)
class OutboundMessage:
    order_id: int
    order_number: str
    vendor_id: int | None
    kind: str
    webhook_url: str = ""
    healing_id: int | None = None
    # The Standard Webhooks ``webhook-id``; derived when not given, so every
    # retry of the same message carries the same id.
    message_id: str = ""

    @property
    def webhook_id(self) -> str:
        if self.message_id:
            return self.message_id
        from orders.webhooks import webhook_message_id

        return webhook_message_id(
            order_id=self.order_id,
            kind=self.kind,
            vendor_id=self.vendor_id,
            healing_id=self.healing_id,
        )


@dataclass
class Delivery:
    message: OutboundMessage
    backend: str
    status: str = MessageStatus.SENT
    error: str = ""
    latency_ms: float = 0.0
    sent_at: datetime = field(default_factory=timezone.now)

    def as_row(self) -> VendorMessage:
        return VendorMessage(
            order_id=self.message.order_id,
            vendor_id=self.message.vendor_id,
            kind=self.message.kind,
            status=self.status,
            backend=self.backend,
            error=self.error[:500],
            latency_ms=round(self.latency_ms, 3),
            healing_id=self.message.healing_id,
            message_id=self.message.webhook_id,
            created_at=self.sent_at,
        )


class DeliveryFailed(GatewayError):
    def __init__(self, delivery: Delivery) -> None:
        super().__init__(delivery.error)
        self.delivery = delivery


class DeliveryRejected(DomainError):
    """The vendor answered a 4xx: that message is refused for good, never retried."""

    code = "vendor_rejected_message"

    def __init__(self, delivery: Delivery) -> None:
        super().__init__(f"vendor refused the message: {delivery.error}")
        self.delivery = delivery


class VendorGateway(Protocol):
    name: str

    def send(self, message: OutboundMessage) -> Delivery:
        """Deliver one message; raise DeliveryFailed (transient) when it did not arrive."""
        ...


class RecordOnlyGateway:
    name = "record"

    def send(self, message: OutboundMessage) -> Delivery:
        return Delivery(message=message, backend=self.name)


class WebhookGateway:
    name = "webhook"

    def __init__(self, *, timeout: float) -> None:
        self.timeout = timeout
        self.session = requests.Session()

    def send(self, message: OutboundMessage) -> Delivery:
        if not message.webhook_url:
            # A vendor without an endpoint is reached through the record only.
            return Delivery(message=message, backend=self.name, error="no webhook_url")
        from orders.webhooks import VendorNotSignable, webhook_build

        started = time.monotonic()

        def failed(error: str) -> Delivery:
            return Delivery(
                message=message,
                backend=self.name,
                status=MessageStatus.FAILED,
                error=error,
                latency_ms=(time.monotonic() - started) * 1000,
            )

        try:
            signed = webhook_build(
                order_id=message.order_id,
                kind=message.kind,
                vendor_id=message.vendor_id,
                message_id=message.webhook_id,
            )
        except VendorNotSignable as exc:
            raise DeliveryRejected(failed(exc.message)) from exc
        try:
            response = self.session.post(
                message.webhook_url,
                data=signed.body.encode(),
                headers=signed.headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise DeliveryFailed(failed(f"{type(exc).__name__}: {exc}")) from exc
        if response.status_code >= 500:
            raise DeliveryFailed(failed(f"HTTP {response.status_code}"))
        if not 200 <= response.status_code < 300:
            raise DeliveryRejected(failed(f"HTTP {response.status_code}"))
        return Delivery(
            message=message, backend=self.name, latency_ms=(time.monotonic() - started) * 1000
        )


class SimulatedGateway:
    name = "simulated"

    def send(self, message: OutboundMessage) -> Delivery:
        # Read on every call so the demo and the benchmark can change them live.
        latency_ms = settings.VENDOR_GATEWAY_SIM_LATENCY_MS
        failure_rate = settings.VENDOR_GATEWAY_SIM_FAILURE_RATE
        if latency_ms:
            time.sleep(latency_ms / 1000)
        # Issue 18: every call to a listed vendor fails (one vendor down).
        failing = message.vendor_id in getattr(settings, "VENDOR_GATEWAY_SIM_FAILING_VENDORS", ())
        if failing or (failure_rate and random.random() < failure_rate):
            raise DeliveryFailed(
                Delivery(
                    message=message,
                    backend=self.name,
                    status=MessageStatus.FAILED,
                    error="simulated vendor gateway timeout",
                    latency_ms=latency_ms,
                )
            )
        if message.webhook_url:
            # A vendor with an endpoint (the demo's webhook vendors) gets the
            # real signed webhook once the weather lets the message through.
            return self._webhook().send(message)
        return Delivery(message=message, backend=self.name, latency_ms=latency_ms)

    def _webhook(self) -> WebhookGateway:
        return _gateway("webhook", settings.VENDOR_GATEWAY_TIMEOUT_SECONDS)  # type: ignore[return-value]


def get_gateway() -> VendorGateway:
    return _gateway(settings.VENDOR_GATEWAY_BACKEND, settings.VENDOR_GATEWAY_TIMEOUT_SECONDS)


@functools.lru_cache(maxsize=8)
def _gateway(backend: str, timeout: float) -> VendorGateway:
    # One instance per process and configuration: the webhook backend keeps
    # its HTTP connections alive across tasks.
    if backend == "record":
        return RecordOnlyGateway()
    if backend == "webhook":
        return WebhookGateway(timeout=timeout)
    if backend == "simulated":
        return SimulatedGateway()
    raise ValueError(
        f"VENDOR_GATEWAY_BACKEND must be record, webhook or simulated, not {backend!r}"
    )
