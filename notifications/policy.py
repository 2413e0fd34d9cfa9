"""Severity policy (docs/DECISIONS.md "Notifications"): who hears what, and how loudly.

- HEALING_FAILED and MANUAL_INTERVENTION_REQUIRED are HIGH;
- SYSTEM_ALERT is CRITICAL for system conditions (guard, failure rate, beat down);
- LOW and MEDIUM are early warnings, raised as SYSTEM_ALERT with a lower
  severity: failure rate above half its threshold (MEDIUM), a cycle late by two
  intervals (MEDIUM), a vendor with repeated timeouts in a day (LOW).

Which channels carry each severity is configuration (``NOTIFICATION_CHANNELS``).
"""

from __future__ import annotations

from django.conf import settings

from notifications.models import NotificationType, Severity

SEVERITY_FOR_TYPE: dict[str, str] = {
    NotificationType.HEALING_FAILED: Severity.HIGH,
    NotificationType.MANUAL_INTERVENTION_REQUIRED: Severity.HIGH,
    NotificationType.SYSTEM_ALERT: Severity.CRITICAL,
}

# Severities an admin is reminded of until someone acknowledges them.
RENOTIFY_SEVERITIES: tuple[str, ...] = (Severity.CRITICAL, Severity.HIGH)


def channel_names_for(severity: str) -> list[str]:
    """The channels configured to carry ``severity``, dashboard first, no duplicates."""
    names = settings.NOTIFICATION_CHANNELS.get(severity, ["dashboard"])
    return list(dict.fromkeys(name.strip().lower() for name in names if name.strip()))
