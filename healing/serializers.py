"""Row shapes shared by several healing views (a healing, a cycle).

Views keep their own nested InputSerializer / OutputSerializer; the row
shapes used by more than one view live here so they read the same everywhere.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from healing.liveness import MACHINERY_STATES, machinery_state
from healing.models import IssueType, RecoveryAction, RecoveryStatus


class HealingActionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    order_id = serializers.IntegerField()
    cycle_id = serializers.IntegerField(allow_null=True)
    trigger = serializers.CharField()
    issue_type = serializers.ChoiceField(choices=IssueType.choices, allow_blank=True)
    action = serializers.CharField(source="recovery_action")
    recovery_action = serializers.ChoiceField(choices=RecoveryAction.choices)
    recovery_status = serializers.ChoiceField(choices=RecoveryStatus.choices)
    skip_reason = serializers.CharField(allow_blank=True)
    error = serializers.CharField(source="error_message", allow_blank=True)
    detected_status = serializers.CharField()
    resulting_status = serializers.CharField(allow_blank=True)
    stuck_minutes = serializers.IntegerField()
    attempt_number = serializers.IntegerField()
    retry_count = serializers.IntegerField()
    dry_run = serializers.BooleanField()
    previous_vendor_id = serializers.IntegerField(allow_null=True)
    new_vendor_id = serializers.IntegerField(allow_null=True)
    vendor_changed = serializers.SerializerMethodField()
    admin_notified = serializers.BooleanField()
    issue_detected_at = serializers.DateTimeField()
    recovery_attempted_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    recovery_duration_seconds = serializers.FloatField(allow_null=True)
    requested_by = serializers.SerializerMethodField()
    # Issue 16: what the machinery is doing with it (queued, running, retrying,
    # lease_expired = awaiting re-dispatch, finished), and when.
    machinery_state = serializers.SerializerMethodField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    lease_expires_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "HealingAction"

    @extend_schema_field(serializers.ChoiceField(choices=MACHINERY_STATES))
    def get_machinery_state(self, obj: Any) -> str:
        return machinery_state(
            recovery_status=obj.recovery_status,
            lease_expires_at=obj.lease_expires_at,
            next_attempt_at=obj.next_attempt_at,
            now=timezone.now(),
        )

    def get_vendor_changed(self, obj: Any) -> bool:
        return obj.new_vendor_id is not None and obj.new_vendor_id != obj.previous_vendor_id

    def get_requested_by(self, obj: Any) -> str | None:
        return obj.requested_by.get_username() if obj.requested_by_id else None


class CycleSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    trigger = serializers.CharField()
    status = serializers.CharField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_ms = serializers.FloatField(allow_null=True)
    detected = serializers.IntegerField()
    dispatched = serializers.IntegerField()
    redispatched = serializers.IntegerField()
    # Counted from the cycle's healings at read time (selectors._with_live_counts).
    healed = serializers.IntegerField(source="healed_now")
    failed = serializers.IntegerField(source="failed_now")
    skipped = serializers.IntegerField(source="skipped_now")
    escalated = serializers.IntegerField(source="escalated_now")
    pending = serializers.IntegerField(source="pending_now")
    open_orders = serializers.IntegerField()
    guard_tripped = serializers.BooleanField()
    error = serializers.CharField(allow_blank=True)

    class Meta:
        ref_name = "HealingCycle"
