"""factory-boy factories for every model, in one place."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from healing.models import HealingAction, HealingCycle, HealingMetric, RecoveryStatus, StuckRule
from notifications.models import AdminNotification, NotificationDelivery
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
    status_write_allowed,
)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "pw-123456")


class BuyerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Buyer

    name = factory.Sequence(lambda n: f"Buyer {n} Ltd")


class CreditAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CreditAccount
        django_get_or_create = ("buyer",)

    buyer = factory.SubFactory(BuyerFactory)
    credit_limit = Decimal("100000")


class VendorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Vendor

    name = factory.Sequence(lambda n: f"Vendor {n}")
    is_active = True
    capacity = 100
    acceptance_rate = 0.9


class OrderFactory(factory.django.DjangoModelFactory):
    """An order created through orders.services, then placed in ``status``
    with its stuck clock ``stuck_minutes`` in the past (test set-up only)."""

    class Meta:
        model = Order

    buyer = factory.SubFactory(BuyerFactory)
    vendor = factory.SubFactory(VendorFactory)
    total = Decimal("250.00")
    payment_method = PaymentMethod.CREDIT

    @classmethod
    def _create(cls, model_class, *args, status=OrderStatus.PENDING, stuck_minutes=0, **kwargs):
        order = services.order_create(
            buyer=kwargs["buyer"],
            vendor=kwargs.get("vendor"),
            total=kwargs["total"],
            payment_method=kwargs["payment_method"],
        )
        clock = timezone.now() - timedelta(minutes=stuck_minutes)
        token = status_write_allowed.set(True)
        try:
            # Fixture shortcut: put the order in its starting state directly.
            Order.objects.filter(pk=order.pk).update(
                status=status, stuck_since=clock, status_changed_at=clock
            )
        finally:
            status_write_allowed.reset(token)
        order.refresh_from_db()
        order._loaded_status = order.status
        return order


class OrderStatusChangeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrderStatusChange

    order = factory.SubFactory(OrderFactory)
    from_status = OrderStatus.PENDING
    to_status = OrderStatus.CONFIRMED
    actor_type = "SYSTEM"
    created_at = factory.LazyFunction(timezone.now)


class VendorAssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = VendorAssignment

    order = factory.SubFactory(OrderFactory, vendor=None)
    vendor = factory.SubFactory(VendorFactory)
    assigned_at = factory.LazyFunction(timezone.now)


class VendorMessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = VendorMessage

    order = factory.SubFactory(OrderFactory)
    kind = "OFFER"
    status = "SENT"
    backend = "record"
    created_at = factory.LazyFunction(timezone.now)


class CreditEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CreditEntry

    account = factory.SubFactory(CreditAccountFactory)
    kind = "CHARGE"
    amount = Decimal("-10.00")


class StuckRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StuckRule
        django_get_or_create = ("status",)

    status = OrderStatus.PENDING
    issue_type = "STUCK_PENDING"
    threshold_minutes = 30
    ladder = ["REASSIGN_VENDOR", "REASSIGN_VENDOR", "CANCEL_ORDER"]


class HealingCycleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = HealingCycle

    started_at = factory.LazyFunction(timezone.now)
    trigger = "CLI"
    status = "FINISHED"


class HealingActionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = HealingAction

    order = factory.SubFactory(OrderFactory)
    issue_type = "STUCK_PENDING"
    issue_detected_at = factory.LazyFunction(timezone.now)
    detected_status = factory.LazyAttribute(lambda o: o.order.status)
    episode_started_at = factory.LazyAttribute(lambda o: o.order.stuck_since)
    recovery_action = "REASSIGN_VENDOR"
    recovery_status = RecoveryStatus.PENDING
    claim_token = factory.LazyFunction(uuid.uuid4)
    lease_expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(minutes=10))
    created_at = factory.LazyFunction(timezone.now)
    updated_at = factory.LazyFunction(timezone.now)


class HealingMetricFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = HealingMetric

    metric_date = factory.LazyFunction(lambda: timezone.now().date())


class AdminNotificationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AdminNotification

    notification_type = "HEALING_FAILED"
    severity = "HIGH"
    order = factory.SubFactory(OrderFactory)
    title = "Healing failed"
    message = "It failed."
    last_occurred_at = factory.LazyFunction(timezone.now)
    created_at = factory.LazyFunction(timezone.now)
    updated_at = factory.LazyFunction(timezone.now)


class NotificationDeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = NotificationDelivery

    notification = factory.SubFactory(AdminNotificationFactory)
    channel = "email"
