from __future__ import annotations

from django.contrib import admin

from healing.models import HealingAction, HealingCycle, HealingMetric, StuckRule


class ReadOnlyAdmin(admin.ModelAdmin):
    """Audit rows (docs/INVARIANTS.md, invariants 9 and 13): viewed with a Close
    button, never added, saved or deleted from the admin."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(StuckRule)
class StuckRuleAdmin(admin.ModelAdmin):
    list_display = (
        "issue_type",
        "status",
        "threshold_minutes",
        "ladder",
        "enabled",
        "dry_run",
        "updated_at",
    )
    list_editable = ("threshold_minutes", "enabled", "dry_run")


@admin.register(HealingAction)
class HealingActionAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "order",
        "issue_type",
        "recovery_action",
        "recovery_status",
        "skip_reason",
        "issue_detected_at",
        "completed_at",
        "retry_count",
        "admin_notified",
    )
    list_filter = ("recovery_status", "issue_type", "recovery_action", "trigger", "skip_reason")
    search_fields = ("order__number",)
    raw_id_fields = (
        "order",
        "cycle",
        "previous_vendor",
        "new_vendor",
        "resolved_by",
        "requested_by",
    )
    show_full_result_count = False
    date_hierarchy = "issue_detected_at"

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]


@admin.register(HealingCycle)
class HealingCycleAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "started_at",
        "trigger",
        "status",
        "detected",
        "dispatched",
        "healed",
        "failed",
        "skipped",
        "escalated",
        "guard_tripped",
        "duration_ms",
    )
    list_filter = ("trigger", "status", "guard_tripped")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]


@admin.register(HealingMetric)
class HealingMetricAdmin(ReadOnlyAdmin):
    list_display = (
        "metric_date",
        "total_stuck_orders_detected",
        "successful_recoveries",
        "failed_recoveries",
        "manual_interventions",
        "healing_success_rate",
        "avg_recovery_time_seconds",
        "p95_recovery_time_seconds",
    )

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]


# Operator tools (issue 19): manual actions on orders and notifications, redrive
# and CSV export on healings; they replace the plain registrations above.
from healing.admin_operator import operator_admin_install  # noqa: E402

operator_admin_install(healing_admin=HealingActionAdmin)

# Vendor health (issue 18): silences and vendor circuits.
from healing import admin_silences  # noqa: E402, F401
