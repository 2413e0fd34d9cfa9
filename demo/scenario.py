"""The demo's world: users, an unreliable marketplace, and compressed rules.

Everything is written through the project's own services (``orders.services``
for orders, ``orders.roles`` for users); the only shortcut is the backlog's
timestamps: those orders were placed and moved *in the past* (the services
take ``now``), so they really sit in their status and are really detected
when their rule's threshold has passed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from healing.defaults import default_rules
from healing.models import HealingAction, HealingCycle, HealingMetric, StuckRule
from notifications.models import AdminNotification
from orders import services
from orders.models import (
    Buyer,
    CreditAccount,
    CreditEntry,
    Order,
    OrderStatus,
    OrderStatusChange,
    PaymentMethod,
    Vendor,
    VendorAssignment,
    VendorMessage,
)
from orders.roles import ADMIN, OPERATIONS, VIEWER, role_user_create

# --- Vendor behaviour ----------------------------------------------------------

RELIABLE = "reliable"  # answers every step within seconds
GHOST = "ghost"  # never takes an assignment: PENDING until reassigned
STALLER = "staller"  # confirms and accepts, never starts: ACCEPTED forever
FORGETFUL = "forgetful"  # confirms, then waits for a nudge to accept / to ship

PROFILE_NOTE = {
    RELIABLE: "reliable",
    GHOST: "never takes assignments",
    STALLER: "accepts, never starts",
    FORGETFUL: "needs a nudge to accept and to ship",
}


@dataclass(frozen=True)
class VendorSpec:
    name: str
    profile: str
    acceptance_rate: float  # its record on paper: healing ranks candidates by it
    capacity: int
    weight: int  # share of the simulator's new orders


# Ghost Freight looks best on paper (healing tries it first) but never answers;
# its small capacity keeps it from swallowing every reassignment.
VENDORS: tuple[VendorSpec, ...] = (
    VendorSpec("Ghost Freight", GHOST, 0.97, 2, 1),
    VendorSpec("Acme Industrial", RELIABLE, 0.93, 200, 3),
    VendorSpec("Nordic Parts", RELIABLE, 0.91, 200, 2),
    VendorSpec("Delta Wholesale", RELIABLE, 0.88, 200, 2),
    VendorSpec("Slowpoke Logistics", STALLER, 0.85, 200, 1),
    VendorSpec("Forgetful Trading", FORGETFUL, 0.80, 200, 2),
    VendorSpec("Silent Partners", GHOST, 0.60, 200, 1),
)
BUYERS = ("Harbour Foods Ltd", "Kestrel Engineering", "Lumen Clinics", "Oakridge Hotels")

# --- The backlog ------------------------------------------------------------------

# (status, vendor name or None, seconds the order has been in that status
# when the demo starts). With the demo's 1-minute thresholds: more than 60 s
# is stuck at once; 46 s crosses the threshold at ~14 s, inside the gateway
# outage (so its healings fail and climb the ladder); 24..12 s cross it after.
BACKLOG: tuple[tuple[str, str | None, int], ...] = (
    # Stuck when the demo starts: healed at once.
    ("PENDING", "Silent Partners", 35 * 60),
    ("PENDING", "Silent Partners", 12 * 60),
    ("PENDING", None, 8 * 60),
    ("CONFIRMED", "Forgetful Trading", 25 * 60),
    ("CONFIRMED", "Forgetful Trading", 6 * 60),
    ("ACCEPTED", "Slowpoke Logistics", 40 * 60),
    ("ACCEPTED", "Slowpoke Logistics", 5 * 60),
    ("PROCESSING", "Forgetful Trading", 30 * 60),
    # Stuck during the gateway outage: fail, fail, then cancel or escalate.
    ("PENDING", "Silent Partners", 46),
    ("PENDING", "Silent Partners", 46),
    ("CONFIRMED", "Forgetful Trading", 46),
    ("ACCEPTED", "Slowpoke Logistics", 46),
    ("PROCESSING", "Forgetful Trading", 46),
    # Stuck after the outage: healed.
    ("PENDING", "Silent Partners", 24),
    ("CONFIRMED", "Forgetful Trading", 20),
    ("ACCEPTED", "Slowpoke Logistics", 16),
    ("PROCESSING", "Forgetful Trading", 12),
)
PATH: dict[str, tuple[str, ...]] = {
    OrderStatus.PENDING: (),
    OrderStatus.CONFIRMED: (OrderStatus.CONFIRMED,),
    OrderStatus.ACCEPTED: (OrderStatus.CONFIRMED, OrderStatus.ACCEPTED),
    OrderStatus.PROCESSING: (
        OrderStatus.CONFIRMED,
        OrderStatus.ACCEPTED,
        OrderStatus.PROCESSING,
    ),
}

# Demo thresholds: the smallest the rules allow (whole minutes).
DEMO_THRESHOLD_MINUTES = 1
CYCLE_TASK = "healing.tasks.run_cycle"


@dataclass
class World:
    vendor_profiles: dict[int, str] = field(default_factory=dict)
    vendor_weights: dict[int, int] = field(default_factory=dict)
    buyer_ids: list[int] = field(default_factory=list)
    backlog: int = 0


@dataclass(frozen=True)
class DemoUser:
    role: str
    username: str
    password: str


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser(ADMIN, "admin", "admin-demo"),
    DemoUser(OPERATIONS, "operations", "operations-demo"),
    DemoUser(VIEWER, "viewer", "viewer-demo"),
)


def demo_users_create() -> tuple[DemoUser, ...]:
    """One user per role, with the fixed demo passwords (idempotent)."""
    for user in DEMO_USERS:
        role_user_create(username=user.username, password=user.password, role=user.role)
    return DEMO_USERS


def demo_data_reset() -> None:
    """Empty the marketplace and the healing records, children first."""
    with transaction.atomic():
        if connection.vendor == "postgresql":  # a deliberate rebuild (invariant 13)
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('audit.allow_prune', 'on', true)")
        for model in (
            AdminNotification,
            HealingAction,
            HealingCycle,
            HealingMetric,
            VendorMessage,
            CreditEntry,
            VendorAssignment,
            OrderStatusChange,
            Order,
            CreditAccount,
            Buyer,
            Vendor,
        ):
            model.objects.all().delete()


def demo_marketplace_seed(*, now: datetime | None = None, rng: random.Random) -> World:
    """Vendors with their behaviour, buyers, and the backlog of BACKLOG."""
    now = now or timezone.now()
    world = World()
    by_name: dict[str, Vendor] = {}
    for spec in VENDORS:
        vendor = Vendor.objects.create(
            name=f"{spec.name} ({PROFILE_NOTE[spec.profile]})",
            acceptance_rate=spec.acceptance_rate,
            capacity=spec.capacity,
            avg_response_minutes=1.0 if spec.profile == RELIABLE else 90.0,
        )
        by_name[spec.name] = vendor
        world.vendor_profiles[vendor.pk] = spec.profile
        world.vendor_weights[vendor.pk] = spec.weight
    for name in BUYERS:
        buyer = Buyer.objects.create(name=name)
        CreditAccount.objects.create(buyer=buyer, credit_limit=Decimal("250000"))
        world.buyer_ids.append(buyer.pk)
    for status, vendor_name, seconds in BACKLOG:
        in_status_since = now - timedelta(seconds=seconds)
        steps = PATH[status]
        # Each earlier step a few minutes before the last one.
        placed = in_status_since - timedelta(minutes=3 * len(steps))
        order = services.order_create(
            buyer=Buyer.objects.get(pk=rng.choice(world.buyer_ids)),
            total=Decimal(rng.randint(5_000, 250_000)) / 100,
            payment_method=rng.choice(list(PaymentMethod.values)),
            vendor=by_name[vendor_name] if vendor_name else None,
            now=placed,
        )
        for index, step in enumerate(steps):
            services.order_transition(
                order=order,
                to_status=step,
                actor=services.Actor.vendor(),
                now=in_status_since - timedelta(minutes=3 * (len(steps) - 1 - index)),
            )
        world.backlog += 1
    return world


def demo_rules_compress(*, minutes: int = DEMO_THRESHOLD_MINUTES) -> dict[str, int]:
    """Set every rule's threshold to ``minutes``; return the previous values.

    Only thresholds change: the ladders stay the defaults, so what the demo
    shows is the production escalation, faster.
    """
    defaults = {rule["status"]: rule["threshold_minutes"] for rule in default_rules()}
    previous = {
        # Already at the demo's value: a demo that was killed before it could
        # restore them; go back to the default thresholds, not to the demo's.
        status: defaults.get(status, value) if value == minutes else value
        for status, value in StuckRule.objects.values_list("status", "threshold_minutes")
    }
    StuckRule.objects.update(threshold_minutes=minutes)
    return previous


def demo_rules_restore(previous: dict[str, int]) -> None:
    for status, minutes in previous.items():
        StuckRule.objects.filter(status=status).update(threshold_minutes=minutes)


def demo_beat_interval_set(*, seconds: int) -> int | None:
    """Point beat's healing-cycle entry at an every-``seconds`` interval (the
    Celery path); returns the previous interval's id to restore it.

    Creates the entry, as migration healing 0003 does, if it is missing.
    """
    interval, _ = IntervalSchedule.objects.get_or_create(
        every=seconds, period=IntervalSchedule.SECONDS
    )
    task = PeriodicTask.objects.filter(task=CYCLE_TASK).first()
    if task is None:
        PeriodicTask.objects.create(
            name="self-healing cycle",
            task=CYCLE_TASK,
            interval=interval,
            kwargs='{"trigger": "BEAT"}',
        )
        return None
    previous = task.interval_id
    task.interval = interval
    task.enabled = True
    task.save(update_fields=["interval", "enabled"])
    return previous


def demo_beat_interval_restore(previous: int | None) -> None:
    """Back to the interval before the demo (the default 5 minutes if the
    demo had to create the entry)."""
    task = PeriodicTask.objects.filter(task=CYCLE_TASK).first()
    if task is None:
        return
    if previous is None:
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=5, period=IntervalSchedule.MINUTES
        )
        previous = interval.pk
    task.interval_id = previous
    task.save(update_fields=["interval"])
