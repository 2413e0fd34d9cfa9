"""Admin notifications: raised only when automatic repair fails."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class NotificationType(models.TextChoices):
    HEALING_FAILED = "HEALING_FAILED", "Healing failed"
    MANUAL_INTERVENTION_REQUIRED = "MANUAL_INTERVENTION_REQUIRED", "Manual intervention required"
    SYSTEM_ALERT = "SYSTEM_ALERT", "System alert"


class Severity(models.TextChoices):
    LOW = "LOW", "Low"
    MEDIUM = "MEDIUM", "Medium"
    HIGH = "HIGH", "High"
    CRITICAL = "CRITICAL", "Critical"


SEVERITY_RANK: dict[str, int] = {"LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}


class AdminNotification(models.Model):
    notification_type = models.CharField(max_length=32, choices=NotificationType.choices)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    order = models.ForeignKey(
        "orders.Order",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="admin_notifications",
    )
    healing_action = models.ForeignKey(
        "healing.HealingAction",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="notifications",
    )
    # System conditions are deduplicated on a key instead of an order
    # ("guard", "failure_rate", "beat_down", "vendor_timeouts:<id>:<date>", ...).
    dedup_key = models.CharField(max_length=120, blank=True)
    title = models.CharField(max_length=300)
    message = models.TextField()
    details = models.JSONField(default=dict, blank=True)
    occurrences = models.PositiveIntegerField(default=1)
    last_occurred_at = models.DateTimeField()
    # Delivery: True once every configured channel delivered.
    sent = models.BooleanField(default=False)
    delivery_method = models.CharField(max_length=200, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Delivery rounds: 0 is the first delivery, n the n-th re-notification.
    renotify_count = models.PositiveIntegerField(default=0)
    renotified_at = models.DateTimeField(null=True, blank=True)
    last_delivered_at = models.DateTimeField(null=True, blank=True)
    # Acknowledged: an admin has seen it. Resolved: the matter is closed.
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    acknowledgement_comment = models.TextField(blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolution_note = models.TextField(blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        db_table = "admin_notifications"
        ordering = ["-created_at", "-id"]
        indexes = [
            # The seed's index: undelivered notifications.
            models.Index(fields=["sent"], name="notification_unsent_idx", condition=Q(sent=False)),
            models.Index(
                fields=["severity", "created_at"],
                name="notification_pending_idx",
                condition=Q(acknowledged_at__isnull=True),
            ),
            models.Index(fields=["created_at"], name="notification_created_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["order", "notification_type"],
                condition=Q(resolved_at__isnull=True, order__isnull=False),
                name="one_open_notification_per_order_type",
            ),
            models.UniqueConstraint(
                fields=["dedup_key"],
                condition=Q(resolved_at__isnull=True) & ~Q(dedup_key=""),
                name="one_open_notification_per_condition",
            ),
        ]

    def __str__(self) -> str:
        return f"[{self.severity}] {self.title}"

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_at is not None

    @property
    def resolved(self) -> bool:
        return self.resolved_at is not None


class Channel(models.TextChoices):
    DASHBOARD = "dashboard", "Dashboard"
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook"
    SMS = "sms", "SMS"
    WHATSAPP = "whatsapp", "WhatsApp"


class DeliveryStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    DELIVERED = "DELIVERED", "Delivered"
    FAILED = "FAILED", "Failed"


class NotificationDelivery(models.Model):
    """One channel's delivery of one notification: attempts and last error."""

    notification = models.ForeignKey(
        AdminNotification, on_delete=models.CASCADE, related_name="deliveries"
    )
    channel = models.CharField(max_length=16, choices=Channel.choices)
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # Which delivery round (0 = first, n = n-th re-notification).
    round = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "admin_notification_deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["notification", "channel", "round"], name="one_delivery_per_channel_round"
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.status} (notification {self.notification_id})"
