"""The vendor gateway: one interface for every message we send a vendor.

Backends (setting ``VENDOR_GATEWAY_BACKEND``):

- ``record``: delivers nothing, succeeds at once; the message row is the record.
- ``webhook``: HTTP POST of a JSON body to the vendor's ``webhook_url``.
- ``simulated``: answers after ``VENDOR_GATEWAY_SIM_LATENCY_MS`` and fails a
  share ``VENDOR_GATEWAY_SIM_FAILURE_RATE`` of calls (demo and benchmark).

A gateway never touches the database: callers record every message as a
``VendorMessage`` row in their own transaction, so no network call happens
while a row lock is held.
"""

from __future__ import annotations

import functools
import random
import time
from dataclasses import dataclass, field
from typing import Protocol

import requests
from django.conf import settings
from django.utils import timezone

from orders.errors import GatewayError
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


@dataclass
class Delivery:
    message: OutboundMessage
    backend: str
    status: str = MessageStatus.SENT
    error: str = ""
    latency_ms: float = 0.0
    sent_at: object = field(default_factory=timezone.now)

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
            created_at=self.sent_at,
        )


class DeliveryFailed(GatewayError):
    def __init__(self, delivery: Delivery) -> None:
        super().__init__(delivery.error)
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
        started = time.monotonic()
        body = {
            "order_id": message.order_id,
            "order_number": message.order_number,
            "vendor_id": message.vendor_id,
            "message": message.kind,
        }
        try:
            response = self.session.post(message.webhook_url, json=body, timeout=self.timeout)
            response.raise_for_status()
        except requests.RequestException as exc:
            raise DeliveryFailed(
                Delivery(
                    message=message,
                    backend=self.name,
                    status=MessageStatus.FAILED,
                    error=f"{type(exc).__name__}: {exc}",
                    latency_ms=(time.monotonic() - started) * 1000,
                )
            ) from exc
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
        if failure_rate and random.random() < failure_rate:
            raise DeliveryFailed(
                Delivery(
                    message=message,
                    backend=self.name,
                    status=MessageStatus.FAILED,
                    error="simulated vendor gateway timeout",
                    latency_ms=latency_ms,
                )
            )
        return Delivery(message=message, backend=self.name, latency_ms=latency_ms)


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
