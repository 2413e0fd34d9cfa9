"""Severity policy (DESIGN.md "Notifications"): who hears what, and how loudly.

- HEALING_FAILED and MANUAL_INTERVENTION_REQUIRED are HIGH;
- SYSTEM_ALERT is CRITICAL for system conditions (guard, failure rate, beat down);
- LOW and MEDIUM are early warnings, raised as SYSTEM_ALERT with a lower
  severity: failure rate above half its threshold (MEDIUM), a cycle late by two
  intervals (MEDIUM), a vendor with repeated timeouts in a day (LOW).

Which channels carry each severity is configuration (``NOTIFICATION_CHANNELS``).
"""

from __future__ import annotations

from datetime import date

from django.conf import settings

from notifications.models import NotificationType, Severity

SEVERITY_FOR_TYPE: dict[str, str] = {
    NotificationType.HEALING_FAILED: Severity.HIGH,
    NotificationType.MANUAL_INTERVENTION_REQUIRED: Severity.HIGH,
    NotificationType.SYSTEM_ALERT: Severity.CRITICAL,
}

# Severities an admin is reminded of until someone acknowledges them.
RENOTIFY_SEVERITIES: tuple[str, ...] = (Severity.CRITICAL, Severity.HIGH)


class AlertKey:
    """``dedup_key`` of each system condition: one open notification per condition."""

    GUARD = "guard"  # raised and resolved by the healing cycle itself
    FAILURE_RATE = "failure_rate"
    FAILURE_RATE_WARNING = "failure_rate_warning"
    BEAT_DOWN = "beat_down"
    CYCLE_LATE = "cycle_late"
    VENDOR_TIMEOUTS_PREFIX = "vendor_timeouts:"

    @staticmethod
    def vendor_timeouts(*, vendor_id: int, day: date) -> str:
        return f"vendor_timeouts:{vendor_id}:{day.isoformat()}"


# (dedup key, severity) of the conditions the sweep watches.
ALERT_SEVERITY: dict[str, str] = {
    AlertKey.GUARD: Severity.CRITICAL,
    AlertKey.FAILURE_RATE: Severity.CRITICAL,
    AlertKey.BEAT_DOWN: Severity.CRITICAL,
    AlertKey.FAILURE_RATE_WARNING: Severity.MEDIUM,
    AlertKey.CYCLE_LATE: Severity.MEDIUM,
}
VENDOR_TIMEOUTS_SEVERITY = Severity.LOW

# No cycle for longer than this many intervals: beat (or the cycle job) is down.
BEAT_DOWN_INTERVALS = 3
# The MEDIUM early warning: a cycle late by two intervals.
CYCLE_LATE_INTERVALS = 2


def channel_names_for(severity: str) -> list[str]:
    """The channels configured to carry ``severity``, dashboard first, no duplicates."""
    names = settings.NOTIFICATION_CHANNELS.get(severity, ["dashboard"])
    return list(dict.fromkeys(name.strip().lower() for name in names if name.strip()))
