"""Rules, healings, cycles and the daily metrics roll-up.

Table and column names follow the seed's SQL (docs/DECISIONS.md "Names") so the
seed's monitoring queries run as written.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from orders.models import OrderStatus


class IssueType(models.TextChoices):
    STUCK_PENDING = "STUCK_PENDING", "Stuck pending"
    STUCK_CONFIRMED = "STUCK_CONFIRMED", "Stuck confirmed"
    STUCK_ACCEPTED = "STUCK_ACCEPTED", "Stuck accepted"
    STUCK_PROCESSING = "STUCK_PROCESSING", "Stuck processing"


ISSUE_TYPE_FOR_STATUS: dict[str, str] = {
    OrderStatus.PENDING: IssueType.STUCK_PENDING,
    OrderStatus.CONFIRMED: IssueType.STUCK_CONFIRMED,
    OrderStatus.ACCEPTED: IssueType.STUCK_ACCEPTED,
    OrderStatus.PROCESSING: IssueType.STUCK_PROCESSING,
}


class RecoveryAction(models.TextChoices):
    REASSIGN_VENDOR = "REASSIGN_VENDOR", "Reassign vendor"
    RETRY_WORKFLOW = "RETRY_WORKFLOW", "Retry workflow"
    CANCEL_ORDER = "CANCEL_ORDER", "Cancel order"
    MANUAL_INTERVENTION = "MANUAL_INTERVENTION", "Manual intervention"


class RecoveryStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    IN_PROGRESS = "IN_PROGRESS", "In progress"
    SUCCESS = "SUCCESS", "Success"
    FAILED = "FAILED", "Failed"
    SKIPPED = "SKIPPED", "Skipped"
    MANUAL_REQUIRED = "MANUAL_REQUIRED", "Manual intervention required"


ACTIVE_STATUSES: tuple[str, ...] = (RecoveryStatus.PENDING, RecoveryStatus.IN_PROGRESS)
FINAL_STATUSES: tuple[str, ...] = (
    RecoveryStatus.SUCCESS,
    RecoveryStatus.FAILED,
    RecoveryStatus.SKIPPED,
    RecoveryStatus.MANUAL_REQUIRED,
)
# docs/DECISIONS.md "Attempts": SKIPPED healings do not count.
ATTEMPT_STATUSES: tuple[str, ...] = (
    RecoveryStatus.SUCCESS,
    RecoveryStatus.FAILED,
    RecoveryStatus.MANUAL_REQUIRED,
)


class SkipReason(models.TextChoices):
    RECOVERED = "RECOVERED", "Recovered by itself"
    GUARD = "GUARD", "Blast-radius guard"
    DRY_RUN = "DRY_RUN", "Dry run"
    ORDER_CLOSED = "ORDER_CLOSED", "Order already finished"
    VENDOR_CIRCUIT_OPEN = "VENDOR_CIRCUIT_OPEN", "Vendor circuit open"
    SILENCED = "SILENCED", "Silenced"


class Trigger(models.TextChoices):
    BEAT = "BEAT", "Scheduled (beat)"
    API = "API", "API"
    STARTUP = "STARTUP", "Worker start-up"
    CLI = "CLI", "Command line"
    SQL = "SQL", "auto_heal_order()"
    DEMO = "DEMO", "Demo scheduler"
    VENDOR_DECLINED = "VENDOR_DECLINED", "Vendor declined"
    REDRIVE = "REDRIVE", "Operator redrive"
    OPERATOR = "OPERATOR", "Operator manual action"
    SWEEP = "SWEEP", "Lease sweeper"


class StuckRule(models.Model):
    """How long an order may sit in a status, and what to do about it."""

    status = models.CharField(max_length=16, choices=OrderStatus.choices, unique=True)
    issue_type = models.CharField(max_length=32, choices=IssueType.choices, unique=True)
    threshold_minutes = models.PositiveIntegerField()
    ladder = models.JSONField(
        default=list,
        help_text=(
            "Recovery action for attempt 1, 2, 3, ...; past the end it is always "
            "MANUAL_INTERVENTION."
        ),
    )
    enabled = models.BooleanField(default=True)
    dry_run = models.BooleanField(
        default=False, help_text="Detect and record what would be done; change no order."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "healing_stuck_rules"
        ordering = ["threshold_minutes"]
        constraints = [
            models.CheckConstraint(
                condition=Q(threshold_minutes__gt=0), name="stuck_rule_threshold_positive"
            )
        ]

    def __str__(self) -> str:
        return f"{self.issue_type} after {self.threshold_minutes} min"

    def clean(self) -> None:
        if self.status not in ISSUE_TYPE_FOR_STATUS:
            raise ValidationError(
                {"status": "Only PENDING, CONFIRMED, ACCEPTED and PROCESSING orders can be stuck."}
            )
        if self.issue_type != ISSUE_TYPE_FOR_STATUS[self.status]:
            raise ValidationError(
                {
                    "issue_type": f"A {self.status} rule's issue type is "
                    f"{ISSUE_TYPE_FOR_STATUS[self.status]}."
                }
            )
        if not isinstance(self.ladder, list):
            raise ValidationError({"ladder": "The ladder is a list of recovery actions."})
        unknown = [step for step in self.ladder if step not in RecoveryAction.values]
        if unknown:
            raise ValidationError(
                {
                    "ladder": f"Unknown recovery action(s): {', '.join(map(str, unknown))}. "
                    f"Use {', '.join(RecoveryAction.values)}."
                }
            )
        if self.status not in ("PENDING", "CONFIRMED", "ACCEPTED") and (
            RecoveryAction.REASSIGN_VENDOR in self.ladder
        ):
            raise ValidationError(
                {"ladder": "Orders in PROCESSING and later are never reassigned."}
            )

    def action_for_attempt(self, attempts: int) -> str:
        """The action for an order with ``attempts`` earlier attempts."""
        if attempts < len(self.ladder):
            return self.ladder[attempts]
        return RecoveryAction.MANUAL_INTERVENTION


class CycleStatus(models.TextChoices):
    RUNNING = "RUNNING", "Running"
    FINISHED = "FINISHED", "Finished"
    FAILED = "FAILED", "Failed"
    ABANDONED = "ABANDONED", "Abandoned (lock expired)"


class HealingCycle(models.Model):
    """One detection pass. The RUNNING row is the overlap lock (a constraint)."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    status = models.CharField(
        max_length=16, choices=CycleStatus.choices, default=CycleStatus.RUNNING
    )
    detected = models.PositiveIntegerField(default=0)
    dispatched = models.PositiveIntegerField(default=0)
    redispatched = models.PositiveIntegerField(default=0)
    healed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    escalated = models.PositiveIntegerField(default=0)
    pending = models.PositiveIntegerField(default=0)
    open_orders = models.PositiveIntegerField(default=0)
    guard_tripped = models.BooleanField(default=False)
    duration_ms = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    # Refreshed while the cycle works; a RUNNING row with an old heartbeat is
    # a dead holder's lock, abandoned by the next cycle (issue 16).
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "healing_cycles"
        ordering = ["-started_at"]
        constraints = [
            # Only one cycle runs at a time, across all machines.
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="RUNNING"), name="one_running_cycle"
            )
        ]
        indexes = [models.Index(fields=["started_at"], name="healing_cycle_started_idx")]

    def __str__(self) -> str:
        return f"cycle {self.pk} ({self.trigger}, {self.status})"


class HealingAction(models.Model):
    """One healing of one order: detection, attempt, result."""

    order = models.ForeignKey(
        "orders.Order", on_delete=models.CASCADE, related_name="healing_actions"
    )
    cycle = models.ForeignKey(
        HealingCycle, on_delete=models.SET_NULL, null=True, blank=True, related_name="healings"
    )
    issue_type = models.CharField(max_length=32, choices=IssueType.choices)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.BEAT)
    # Detection: the stuck episode is (order, detected_status, episode_started_at).
    issue_detected_at = models.DateTimeField()
    detected_status = models.CharField(max_length=16, choices=OrderStatus.choices)
    episode_started_at = models.DateTimeField()
    stuck_minutes = models.PositiveIntegerField(default=0)
    attempt_number = models.PositiveIntegerField(default=1)
    dry_run = models.BooleanField(default=False)
    # Recovery.
    recovery_action = models.CharField(max_length=32, choices=RecoveryAction.choices)
    recovery_status = models.CharField(
        max_length=16, choices=RecoveryStatus.choices, default=RecoveryStatus.PENDING
    )
    skip_reason = models.CharField(max_length=24, choices=SkipReason.choices, blank=True)
    recovery_attempted_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    recovery_duration_seconds = models.FloatField(null=True, blank=True)
    resulting_status = models.CharField(max_length=16, choices=OrderStatus.choices, blank=True)
    previous_vendor = models.ForeignKey(
        "orders.Vendor", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    new_vendor = models.ForeignKey(
        "orders.Vendor", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    error_message = models.TextField(blank=True)
    retry_count = models.PositiveIntegerField(default=0)
    admin_notified = models.BooleanField(default=False)
    # docs/DECISIONS.md "Claim and lease": the token the current task must present.
    claim_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # When a scheduled retry runs ("retrying"); cleared by the next claim.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Manual resolution of a MANUAL_REQUIRED healing hands the order back.
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    # Issue 18: the silence that held this healing (SKIPPED, reason SILENCED).
    silence = models.ForeignKey(
        "healing.Silence", on_delete=models.SET_NULL, null=True, blank=True, related_name="healings"
    )

    class Meta:
        db_table = "healing_actions"
        ordering = ["-issue_detected_at", "-id"]
        indexes = [
            # The seed's indexes.
            models.Index(fields=["order"], name="healing_order_idx"),
            models.Index(fields=["recovery_status"], name="healing_status_idx"),
            models.Index(fields=["issue_detected_at"], name="healing_detected_idx"),
            # Attempts since the last resolution, and the manual hold.
            models.Index(fields=["order", "created_at"], name="healing_order_created_idx"),
            models.Index(
                fields=["order"],
                name="healing_manual_hold_idx",
                condition=Q(recovery_status="MANUAL_REQUIRED", resolved_at__isnull=True),
            ),
            models.Index(
                fields=["lease_expires_at"],
                name="healing_active_lease_idx",
                condition=Q(recovery_status__in=ACTIVE_STATUSES),
            ),
            models.Index(fields=["cycle", "recovery_status"], name="healing_cycle_idx"),
            models.Index(fields=["completed_at"], name="healing_completed_idx"),
        ]
        constraints = [
            # Invariant 2: at most one active healing per order.
            models.UniqueConstraint(
                fields=["order"],
                condition=Q(recovery_status__in=ACTIVE_STATUSES),
                name="one_active_healing_per_order",
            ),
            # At most one successful healing per stuck episode.
            models.UniqueConstraint(
                fields=["order", "detected_status", "episode_started_at"],
                condition=Q(recovery_status="SUCCESS"),
                name="one_success_per_episode",
            ),
            models.CheckConstraint(
                condition=~Q(recovery_status="SKIPPED") | ~Q(skip_reason=""),
                name="skipped_healing_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"healing {self.pk} order={self.order_id} {self.recovery_action} {self.recovery_status}"
        )

    @property
    def is_active(self) -> bool:
        return self.recovery_status in ACTIVE_STATUSES


class HealingMetric(models.Model):
    """Daily roll-up of healing_actions; a cache rebuilt from the rows (invariant 9)."""

    metric_date = models.DateField(unique=True)
    total_stuck_orders_detected = models.PositiveIntegerField(default=0)
    stuck_pending_detected = models.PositiveIntegerField(default=0)
    stuck_confirmed_detected = models.PositiveIntegerField(default=0)
    stuck_accepted_detected = models.PositiveIntegerField(default=0)
    stuck_processing_detected = models.PositiveIntegerField(default=0)
    successful_recoveries = models.PositiveIntegerField(default=0)
    failed_recoveries = models.PositiveIntegerField(default=0)
    skipped_recoveries = models.PositiveIntegerField(default=0)
    manual_interventions = models.PositiveIntegerField(default=0)
    reassign_vendor_count = models.PositiveIntegerField(default=0)
    retry_workflow_count = models.PositiveIntegerField(default=0)
    cancel_order_count = models.PositiveIntegerField(default=0)
    manual_intervention_count = models.PositiveIntegerField(default=0)
    notifications_raised = models.PositiveIntegerField(default=0)
    avg_recovery_time_seconds = models.FloatField(null=True, blank=True)
    p50_recovery_time_seconds = models.FloatField(null=True, blank=True)
    p95_recovery_time_seconds = models.FloatField(null=True, blank=True)
    # Percent, 0..100: SUCCESS / (SUCCESS + FAILED + MANUAL_REQUIRED).
    healing_success_rate = models.DecimalField(
        max_digits=5, decimal_places=2, null=True, blank=True
    )
    cycles_run = models.PositiveIntegerField(default=0)
    last_cycle_duration_seconds = models.FloatField(null=True, blank=True)
    oldest_stuck_minutes = models.PositiveIntegerField(null=True, blank=True)
    orders_stuck_now = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "healing_metrics"
        ordering = ["-metric_date"]

    def __str__(self) -> str:
        return f"metrics {self.metric_date}"


# Operator tools (issue 19): the redrive token ledger lives in its own module;
# importing it here registers it with the app.
from healing.redrive_models import RedriveExecution  # noqa: E402, F401

# Vendor health (issue 18): silences and their audit rows, in their own module.
from healing.silence_models import Silence, SilenceAction, SilenceEvent  # noqa: E402, F401
