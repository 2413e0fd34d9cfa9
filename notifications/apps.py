from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core import checks


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Admin notifications"

    def ready(self) -> None:
        # Registers notification_deliver, which the services send by name
        # (they never import tasks): every process, web included, has it.
        from notifications import tasks  # noqa: F401

        checks.register(notification_settings_check, checks.Tags.compatibility)


def notification_settings_check(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """A misspelled channel or severity in the environment is silently ignored otherwise."""
    from django.conf import settings

    from notifications.models import Channel, Severity

    errors: list[checks.CheckMessage] = []
    configured = getattr(settings, "NOTIFICATION_CHANNELS", {})
    for severity, names in configured.items():
        if severity not in Severity.values:
            errors.append(
                checks.Error(
                    f"NOTIFICATION_CHANNELS has an unknown severity {severity!r}",
                    id="notifications.E001",
                )
            )
        for name in names:
            if name not in Channel.values:
                errors.append(
                    checks.Error(
                        f"NOTIFICATION_CHANNELS_{severity} names an unknown channel {name!r}; "
                        f"use {', '.join(Channel.values)}",
                        id="notifications.E002",
                    )
                )
    return errors
