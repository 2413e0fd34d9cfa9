"""The marketplace's other side: new orders, and vendors that behave badly.

The simulator only ever calls ``orders.services`` with a vendor or system
actor, exactly as the vendor integration would; it never touches healing
rows. It also plays the vendor gateway's weather: a base share of timeouts,
and a full outage in a window of every period (in-process mode only: the
gateway reads its settings on every call).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from demo.scenario import FORGETFUL, GHOST, RELIABLE, STALLER, World
from orders import services
from orders.errors import DomainError
from orders.models import (
    Buyer,
    MessageKind,
    MessageStatus,
    Order,
    OrderStatus,
    PaymentMethod,
    Vendor,
    VendorMessage,
)

logger = logging.getLogger("demo.simulator")

# A cooperative vendor's next step from each status.
NEXT_STEP: dict[str, OrderStatus] = {
    OrderStatus.PENDING: OrderStatus.CONFIRMED,
    OrderStatus.CONFIRMED: OrderStatus.ACCEPTED,
    OrderStatus.ACCEPTED: OrderStatus.PROCESSING,
    OrderStatus.PROCESSING: OrderStatus.SHIPPED,
    OrderStatus.SHIPPED: OrderStatus.DELIVERED,
}
# The workflow message a forgetful vendor waits for before acting.
NUDGE: dict[str, MessageKind] = {
    OrderStatus.CONFIRMED: MessageKind.ACCEPT_REQUEST,
    OrderStatus.PROCESSING: MessageKind.FULFILMENT_POLL,
}


@dataclass(frozen=True)
class GatewayWeather:
    """Share of vendor-gateway timeouts, and an outage window of each period."""

    base_failure_rate: float = 0.15
    outage_start: float = 10.0
    outage_end: float = 25.0
    period: float = 180.0

    def failure_rate(self, elapsed: float) -> float:
        offset = elapsed % self.period
        if self.outage_start <= offset < self.outage_end:
            return 1.0
        return self.base_failure_rate

    def in_outage(self, elapsed: float) -> bool:
        return self.failure_rate(elapsed) >= 1.0

    def to_env(self, *, started_at: float) -> str:
        """For the demo's Celery workers (``DEMO_GATEWAY_WEATHER``): the same
        weather, on the same clock (``started_at`` is a Unix time)."""
        return ",".join(
            str(v)
            for v in (
                started_at,
                self.base_failure_rate,
                self.outage_start,
                self.outage_end,
                self.period,
            )
        )

    @classmethod
    def from_env(cls, value: str) -> tuple[float, GatewayWeather]:
        started_at, base, start, end, period = (float(v) for v in value.split(","))
        return started_at, cls(base, start, end, period)


@dataclass
class Simulator:
    world: World
    rng: random.Random
    started_at: datetime
    new_order_every: float = 2.0
    weather: GatewayWeather | None = None
    created: int = 0
    vendor_steps: int = 0
    _next_order_at: float = 0.0
    _last_rate: float | None = field(default=None, repr=False)

    def elapsed(self, now: datetime) -> float:
        return (now - self.started_at).total_seconds()

    def tick(self, now: datetime | None = None) -> None:
        """One step of the world: weather, new orders, vendor behaviour."""
        now = now or timezone.now()
        elapsed = self.elapsed(now)
        if self.weather is not None:
            rate = self.weather.failure_rate(elapsed)
            if rate != self._last_rate:
                # Read by the simulated gateway on every call (orders.gateway).
                settings.VENDOR_GATEWAY_SIM_FAILURE_RATE = rate
                self._last_rate = rate
        try:
            if elapsed >= self._next_order_at:
                self._order_place()
                self._next_order_at = elapsed + self.new_order_every
            self._vendors_act(now)
        except OperationalError:
            # SQLite busy past its timeout under load: the next tick carries on.
            logger.warning("simulator tick skipped: database busy", exc_info=True)

    def _order_place(self) -> None:
        vendor_ids = list(self.world.vendor_weights)
        weights = [self.world.vendor_weights[v] for v in vendor_ids]
        vendor_id = self.rng.choices(vendor_ids, weights=weights)[0]
        services.order_create(
            buyer=Buyer.objects.get(pk=self.rng.choice(self.world.buyer_ids)),
            total=Decimal(self.rng.randint(5_000, 250_000)) / 100,
            payment_method=self.rng.choice(list(PaymentMethod.values)),
            vendor=Vendor.objects.get(pk=vendor_id),
        )
        self.created += 1

    def _vendors_act(self, now: datetime) -> None:
        orders = list(
            Order.objects.filter(status__in=list(NEXT_STEP), vendor__isnull=False).only(
                "id", "number", "status", "vendor_id", "stuck_since"
            )[:500]
        )
        nudged = self._nudged(orders)
        for order in orders:
            if order.vendor_id is None:  # filtered out above; narrows the type
                continue
            profile = self.world.vendor_profiles.get(order.vendor_id, RELIABLE)
            waited = (now - order.stuck_since).total_seconds()
            # Each vendor takes a few seconds per step (stable per order).
            if waited < 1.5 + (order.pk % 3):
                continue
            if not self._will_act(profile, order, nudged):
                continue
            try:
                services.order_transition(
                    order=order,
                    to_status=NEXT_STEP[order.status],
                    actor=services.Actor.vendor(),
                    reason=f"vendor: {order.status.lower()} -> {NEXT_STEP[order.status].lower()}",
                    expected_status=order.status,
                )
                self.vendor_steps += 1
            except DomainError:
                continue  # healing moved it meanwhile (reassigned, cancelled)

    @staticmethod
    def _will_act(profile: str, order: Order, nudged: set[tuple[int, str]]) -> bool:
        if profile == GHOST:
            return False
        if profile == STALLER:
            return order.status in (OrderStatus.PENDING, OrderStatus.CONFIRMED)
        if profile == FORGETFUL and order.status in NUDGE:
            return (order.pk, order.status) in nudged
        return True

    @staticmethod
    def _nudged(orders: list[Order]) -> set[tuple[int, str]]:
        """(order, status) pairs whose workflow message the healing re-sent
        since the order entered that status (its stuck clock restarted)."""
        waiting = {o.pk: o for o in orders if o.status in NUDGE}
        if not waiting:
            return set()
        found: set[tuple[int, str]] = set()
        rows = VendorMessage.objects.filter(
            order_id__in=list(waiting),
            healing_id__isnull=False,
            status=MessageStatus.SENT,
            kind__in=list(NUDGE.values()),
        ).values_list("order_id", "kind", "created_at")
        for order_id, kind, created_at in rows:
            order = waiting[order_id]
            if NUDGE[order.status] == kind and created_at >= order.stuck_since - timedelta(
                seconds=1
            ):
                found.add((order_id, order.status))
        return found
