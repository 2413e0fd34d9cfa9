"""Silences and maintenance windows (issue 18), Alertmanager-style but order-aware.

A silence matches stuck orders by vendor, status / issue type and buyer
(every matcher given must match; at least one is given), between a start and
an end, optionally only on some weekdays between two local times (a weekly
maintenance window). Matching orders are still detected and recorded
(SKIPPED, reason SILENCED, with the silence), but no action runs and nobody
is paged. Every change is an audit row (``SilenceEvent``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from orders.models import OrderStatus


class Silence(models.Model):
    vendor = models.ForeignKey(
        "orders.Vendor", on_delete=models.CASCADE, null=True, blank=True, related_name="silences"
    )
    buyer = models.ForeignKey(
        "orders.Buyer", on_delete=models.CASCADE, null=True, blank=True, related_name="silences"
    )
    status = models.CharField(max_length=16, choices=OrderStatus.choices, blank=True)
    issue_type = models.CharField(max_length=32, blank=True)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    # Weekly recurrence inside [starts_at, ends_at): only on these weekdays
    # (0 = Monday) between these local times; empty = the whole window.
    recurrence_weekdays = models.JSONField(default=list, blank=True)
    recurrence_start = models.TimeField(null=True, blank=True)
    recurrence_end = models.TimeField(null=True, blank=True)
    time_zone = models.CharField(max_length=64, default="UTC")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    comment = models.TextField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        db_table = "healing_silences"
        ordering = ["-starts_at", "-id"]
        indexes = [models.Index(fields=["ends_at", "starts_at"], name="silence_window_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="silence_ends_after_start"
            ),
            models.CheckConstraint(
                condition=Q(vendor__isnull=False)
                | Q(buyer__isnull=False)
                | ~Q(status="")
                | ~Q(issue_type=""),
                name="silence_has_a_matcher",
            ),
        ]

    def __str__(self) -> str:
        return f"silence {self.pk}: {self.comment[:40]}"


class SilenceAction(models.TextChoices):
    CREATED = "CREATED", "Created"
    UPDATED = "UPDATED", "Updated"
    EXTENDED = "EXTENDED", "Extended"
    EXPIRED = "EXPIRED", "Expired early"


class SilenceEvent(models.Model):
    """The audit trail of a silence: who did what, and the silence after it."""

    silence = models.ForeignKey(Silence, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=16, choices=SilenceAction.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    snapshot = models.JSONField(default=dict)
    created_at = models.DateTimeField()

    class Meta:
        db_table = "healing_silence_events"
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.action} silence {self.silence_id}"
