"""The marketplace whose orders the healing engine repairs.

Status changes are written by ``orders.services`` only: the queryset and the
model refuse a status write that does not come from there (invariant 1).
"""

from __future__ import annotations

import contextvars
from collections.abc import Collection
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

if TYPE_CHECKING:  # Django 6's fetch modes: the stubs know them, 5.2 does not
    from django.db.models.fetch_modes import FetchMode

# Set by orders.services around its status writes; anything else that tries to
# write Order.status raises StatusWriteOutsideServices.
status_write_allowed: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "status_write_allowed", default=False
)


class StatusWriteOutsideServices(RuntimeError):
    """Order.status may only change through orders.services."""


class OrderStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    CONFIRMED = "CONFIRMED", "Confirmed"
    ACCEPTED = "ACCEPTED", "Accepted"
    PROCESSING = "PROCESSING", "Processing"
    SHIPPED = "SHIPPED", "Shipped"
    DELIVERED = "DELIVERED", "Delivered"
    CANCELLED = "CANCELLED", "Cancelled"


OPEN_STATUSES: tuple[str, ...] = (
    OrderStatus.PENDING,
    OrderStatus.CONFIRMED,
    OrderStatus.ACCEPTED,
    OrderStatus.PROCESSING,
    OrderStatus.SHIPPED,
)
TERMINAL_STATUSES: tuple[str, ...] = (OrderStatus.DELIVERED, OrderStatus.CANCELLED)
# Statuses a vendor holds an order in before work starts: reassignable.
REASSIGNABLE_STATUSES: tuple[str, ...] = (
    OrderStatus.PENDING,
    OrderStatus.CONFIRMED,
    OrderStatus.ACCEPTED,
)


class PaymentMethod(models.TextChoices):
    CREDIT = "CREDIT", "Credit"
    CARD = "CARD", "Card"
    BANK_TRANSFER = "BANK_TRANSFER", "Bank transfer"


class ActorType(models.TextChoices):
    SYSTEM = "SYSTEM", "System"
    HEALING = "HEALING", "Self-healing"
    VENDOR = "VENDOR", "Vendor"
    USER = "USER", "User"


class Buyer(models.Model):
    """A B2B company that places orders."""

    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "buyers"

    def __str__(self) -> str:
        return self.name


class CreditAccount(models.Model):
    """A buyer's credit line. Its balance is the sum of its ledger entries."""

    buyer = models.OneToOneField(
        Buyer, on_delete=models.CASCADE, primary_key=True, related_name="credit_account"
    )
    credit_limit = models.DecimalField(
        max_digits=14, decimal_places=2, default=Decimal("0"), validators=[MinValueValidator(0)]
    )

    class Meta:
        db_table = "credit_accounts"

    def __str__(self) -> str:
        return f"Credit account of {self.buyer}"


class CreditEntryKind(models.TextChoices):
    CHARGE = "CHARGE", "Charge"
    REFUND = "REFUND", "Refund"


class CreditEntry(models.Model):
    """One ledger line: a charge is negative, a refund positive."""

    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="entries")
    order = models.ForeignKey(
        "Order", on_delete=models.PROTECT, null=True, blank=True, related_name="credit_entries"
    )
    kind = models.CharField(max_length=16, choices=CreditEntryKind.choices)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "credit_entries"
        constraints = [
            # Invariant 5: credit is refunded at most once per order.
            models.UniqueConstraint(
                fields=["order"], condition=Q(kind="REFUND"), name="credit_one_refund_per_order"
            ),
            models.UniqueConstraint(
                fields=["order"], condition=Q(kind="CHARGE"), name="credit_one_charge_per_order"
            ),
            models.CheckConstraint(
                condition=(Q(kind="CHARGE", amount__lt=0) | Q(kind="REFUND", amount__gt=0)),
                name="credit_entry_sign_matches_kind",
            ),
        ]
        indexes = [models.Index(fields=["account", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount}"


class Vendor(models.Model):
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    capacity = models.PositiveIntegerField(default=100, help_text="Open orders it can hold.")
    # Maintained by orders.services in the transaction that assigns or releases
    # an order, so selection never counts orders.
    open_orders = models.PositiveIntegerField(default=0, editable=False)
    acceptance_rate = models.FloatField(
        default=0.9, help_text="Share of offers the vendor accepted (ranking)."
    )
    avg_response_minutes = models.FloatField(default=30.0)
    webhook_url = models.URLField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Vendor time (issue 18, orders.calendars): working hours per weekday in the
    # vendor's time zone and closed dates. An empty week is "always open" (the
    # default): its thresholds are wall-clock minutes, as before calendars.
    time_zone = models.CharField(max_length=64, default="UTC")
    working_hours = models.JSONField(
        default=dict,
        blank=True,
        help_text='Weekday (0 = Monday) to opening spans, e.g. {"0": [["08:00", "18:00"]]}; '
        "empty = always open.",
    )
    holidays = models.JSONField(
        default=list, blank=True, help_text='Closed dates, e.g. ["2026-12-25"].'
    )

    class Meta:
        db_table = "vendors"
        indexes = [
            models.Index(
                fields=["-acceptance_rate", "open_orders", "id"],
                name="vendor_ranking_idx",
                condition=Q(is_active=True),
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(acceptance_rate__gte=0, acceptance_rate__lte=1),
                name="vendor_acceptance_rate_is_share",
            )
        ]

    def __str__(self) -> str:
        return self.name


class OrderQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        if "status" in kwargs and not status_write_allowed.get():
            raise StatusWriteOutsideServices("Order.status changes only through orders.services")
        return super().update(**kwargs)

    def open(self) -> OrderQuerySet:
        return self.filter(status__in=OPEN_STATUSES)


class Order(models.Model):
    number = models.CharField(max_length=32, unique=True)
    buyer = models.ForeignKey(Buyer, on_delete=models.PROTECT, related_name="orders")
    vendor = models.ForeignKey(
        Vendor, on_delete=models.PROTECT, null=True, blank=True, related_name="orders"
    )
    status = models.CharField(
        max_length=16, choices=OrderStatus.choices, default=OrderStatus.PENDING
    )
    payment_method = models.CharField(max_length=16, choices=PaymentMethod.choices)
    total = models.DecimalField(max_digits=14, decimal_places=2, validators=[MinValueValidator(0)])
    # db_default too: the seed and the benchmark insert orders with raw SQL.
    currency = models.CharField(max_length=3, default="USD", db_default="USD")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    status_changed_at = models.DateTimeField()
    # The stuck clock: when the order last made progress. Every status change
    # and every successful healing restarts it; history is never rewritten.
    stuck_since = models.DateTimeField()
    # Vendor time (issue 18): when the stuck clock runs out in the vendor's
    # working minutes. Set by orders.services when the clock starts, for a
    # vendor with a calendar only; NULL means wall-clock minutes (stuck_since).
    due_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = OrderQuerySet.as_manager()
    # The status as loaded or last saved: save() refuses any other change.
    _loaded_status: str | None

    class Meta:
        db_table = "orders"
        indexes = [
            # Detection: "orders in status S whose clock is older than T" is a
            # range scan of this partial index; finished orders are not in it.
            # It carries every column detection reads (PostgreSQL INCLUDE), so
            # the scan never visits the table: stuck orders are rows nobody
            # wrote for a while, on pages vacuum has marked all-visible.
            models.Index(
                fields=["status", "stuck_since", "id"],
                include=["number", "vendor_id", "due_at"],
                name="orders_open_stuck_idx",
                condition=Q(status__in=OPEN_STATUSES),
            ),
            # Detection of vendor-time orders: "status S and due before now".
            models.Index(
                fields=["status", "due_at"],
                include=["stuck_since", "id", "number", "vendor_id"],
                name="orders_open_due_idx",
                condition=Q(status__in=OPEN_STATUSES, due_at__isnull=False),
            ),
            models.Index(fields=["buyer", "created_at"], name="orders_buyer_idx"),
            models.Index(fields=["vendor"], name="orders_vendor_idx"),
        ]

    def __str__(self) -> str:
        return self.number

    def save(self, *args: Any, **kwargs: Any) -> None:
        loaded = getattr(self, "_loaded_status", None)
        changing = self._state.adding or loaded != self.status
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "status" not in update_fields:
            changing = False
        if changing and not status_write_allowed.get():
            raise StatusWriteOutsideServices("Order.status changes only through orders.services")
        super().save(*args, **kwargs)
        self._loaded_status = self.status

    @classmethod
    def from_db(
        cls,
        db: str | None,
        field_names: Collection[str],
        values: Collection[Any],
        *,
        fetch_mode: FetchMode | None = None,
    ) -> Order:
        # Django 5.2's from_db takes no fetch_mode: pass it on only when given.
        extra = {} if fetch_mode is None else {"fetch_mode": fetch_mode}
        instance = super().from_db(db, field_names, values, **extra)
        instance._loaded_status = instance.__dict__.get("status")
        return instance

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class OrderStatusChange(models.Model):
    """History: one row per status change or stuck-clock restart."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=16, choices=OrderStatus.choices, blank=True)
    to_status = models.CharField(max_length=16, choices=OrderStatus.choices)
    from_vendor_id = models.BigIntegerField(null=True, blank=True)
    to_vendor_id = models.BigIntegerField(null=True, blank=True)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    # PROTECT, not SET_NULL: the row is append-only (migration 0003's trigger
    # refuses the UPDATE), so a user who acted on orders is deactivated, never deleted.
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True
    )
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        db_table = "order_status_changes"
        indexes = [models.Index(fields=["order", "created_at"], name="status_change_order_idx")]
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.order_id}: {self.from_status or '-'} -> {self.to_status}"


class AssignmentOutcome(models.TextChoices):
    ACTIVE = "ACTIVE", "Active"
    REASSIGNED = "REASSIGNED", "Reassigned away"
    DECLINED = "DECLINED", "Declined by the vendor"
    COMPLETED = "COMPLETED", "Completed"
    CANCELLED = "CANCELLED", "Cancelled"


class VendorAssignment(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="assignments")
    vendor = models.ForeignKey(Vendor, on_delete=models.PROTECT, related_name="assignments")
    assigned_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(
        max_length=16, choices=AssignmentOutcome.choices, default=AssignmentOutcome.ACTIVE
    )

    class Meta:
        db_table = "vendor_assignments"
        constraints = [
            # A reassignment never returns an order to a vendor that had it.
            models.UniqueConstraint(fields=["order", "vendor"], name="assignment_once_per_vendor"),
        ]
        indexes = [models.Index(fields=["vendor", "assigned_at"], name="assignment_vendor_idx")]

    def __str__(self) -> str:
        return f"{self.order_id} -> {self.vendor_id} ({self.outcome})"


class MessageKind(models.TextChoices):
    OFFER = "OFFER", "Offer the order"
    CONFIRM_REQUEST = "CONFIRM_REQUEST", "Ask to confirm"
    ACCEPT_REQUEST = "ACCEPT_REQUEST", "Ask to accept"
    START_REQUEST = "START_REQUEST", "Ask to start processing"
    FULFILMENT_POLL = "FULFILMENT_POLL", "Poll fulfilment"
    WITHDRAW = "WITHDRAW", "Withdraw the offer"


class MessageStatus(models.TextChoices):
    SENT = "SENT", "Sent"
    FAILED = "FAILED", "Failed"


class VendorMessage(models.Model):
    """Every outbound message to a vendor, whatever the gateway backend."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="vendor_messages")
    vendor = models.ForeignKey(
        Vendor, on_delete=models.PROTECT, null=True, blank=True, related_name="messages"
    )
    kind = models.CharField(max_length=24, choices=MessageKind.choices)
    status = models.CharField(max_length=8, choices=MessageStatus.choices)
    backend = models.CharField(max_length=16)
    error = models.CharField(max_length=500, blank=True)
    latency_ms = models.FloatField(default=0)
    # Which healing sent it, when one did (no FK: orders does not know healing).
    healing_id = models.BigIntegerField(null=True, blank=True)
    # The Standard Webhooks ``webhook-id``: the same for every retry of one
    # message, so a vendor can drop duplicates.
    message_id = models.CharField(max_length=100, blank=True, default="", db_default="")
    created_at = models.DateTimeField()

    class Meta:
        db_table = "vendor_messages"
        indexes = [
            models.Index(fields=["order", "created_at"], name="vendor_message_order_idx"),
            models.Index(fields=["vendor", "created_at"], name="vendor_message_vendor_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.status} order={self.order_id}"


# Vendor and marketplace edges (issue 14): credentials and idempotency keys.
# They live in their own module to keep this one readable; importing them here
# registers them with the app like any model of this module.
from orders.edge_models import (  # noqa: E402, F401
    IdempotencyKey,
    VendorAPIKey,
    VendorCredential,
)

# --- Vendor health (issue 18, orders.health) ---------------------------------


class CircuitState(models.TextChoices):
    CLOSED = "CLOSED", "Closed (healthy)"
    OPEN = "OPEN", "Open (no calls)"
    HALF_OPEN = "HALF_OPEN", "Half-open (one probe)"


class VendorCircuit(models.Model):
    """A vendor's circuit breaker, shared by every worker (invariant 14).

    One row per vendor that ever failed; no row is a closed circuit. Every
    change is a conditional UPDATE or happens under this row's lock.
    """

    vendor = models.OneToOneField(
        Vendor, on_delete=models.CASCADE, primary_key=True, related_name="circuit"
    )
    state = models.CharField(
        max_length=10, choices=CircuitState.choices, default=CircuitState.CLOSED
    )
    failures = models.PositiveIntegerField(default=0)
    window_started_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    # OPEN: when the cool-down ends and one probe may go; HALF_OPEN: when the
    # probe's lease ends (a lost probe lets another one go).
    retry_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        db_table = "vendor_circuits"
        indexes = [
            models.Index(
                fields=["state"], name="vendor_circuit_open_idx", condition=~Q(state="CLOSED")
            )
        ]

    def __str__(self) -> str:
        return f"vendor {self.vendor_id}: {self.state}"
