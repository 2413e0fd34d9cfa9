"""Shared by the healing endpoint tests: the API's base path and a healing's keys."""

from __future__ import annotations

BASE = "/api/v1/self-healing"
HEALING_KEYS = {
    "id",
    "order_id",
    "cycle_id",
    "trigger",
    "issue_type",
    "action",
    "recovery_action",
    "recovery_status",
    "skip_reason",
    "error",
    "detected_status",
    "resulting_status",
    "stuck_minutes",
    "attempt_number",
    "retry_count",
    "dry_run",
    "previous_vendor_id",
    "new_vendor_id",
    "vendor_changed",
    "admin_notified",
    "issue_detected_at",
    "recovery_attempted_at",
    "completed_at",
    "recovery_duration_seconds",
    "requested_by",
    # Issue 16: what the machinery is doing with it.
    "machinery_state",
    "next_attempt_at",
    "lease_expires_at",
}
