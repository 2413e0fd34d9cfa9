"""Healing's hooks: worker start-up, and what a resolved notification means.

``notifications`` knows nothing of healing; it announces a resolution and
healing decides what that means for the order.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from typing import Any

from celery.signals import worker_init, worker_ready
from django.conf import settings
from django.dispatch import receiver

from notifications.models import AdminNotification, NotificationType
from notifications.services import notifications_resolve_for_order
from notifications.signals import notification_resolved

logger = logging.getLogger("healing.worker")


@worker_init.connect
def deploy_checks_run(sender: Any = None, **kwargs: Any) -> None:
    """A worker with a configuration that would lose, double or stall heals
    refuses to start, with one line (healing.checks)."""
    from healing.checks import healing_checks

    errors = healing_checks()
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        sys.stderr.write(f"configuration error: {first.id}: {first.msg}; {first.hint}{more}\n")
        sys.stderr.flush()
        raise SystemExit(2)


@worker_ready.connect
def schedule_startup_cycle(sender: Any = None, **kwargs: Any) -> None:
    interval_minutes = settings.HEALING_CYCLE_INTERVAL_SECONDS // 60
    logger.info("Self-healing worker started (runs every %s minutes)", interval_minutes)
    if not settings.HEALING_RUN_ON_WORKER_START:
        return
    from celery import current_app

    current_app.tasks["healing.tasks.run_cycle"].apply_async(
        kwargs={"trigger": "STARTUP"}, countdown=settings.HEALING_STARTUP_DELAY_SECONDS
    )


@receiver(notification_resolved, sender=AdminNotification)
def manual_intervention_hand_back(
    sender: Any, notification: AdminNotification, user: Any, now: datetime, **kwargs: Any
) -> None:
    """Resolving MANUAL_INTERVENTION_REQUIRED hands its order back to automation:
    its attempts restart and the next cycle heals it again. The order's open
    HEALING_FAILED notifications, the escalation's cause, close with it."""
    if (
        notification.notification_type != NotificationType.MANUAL_INTERVENTION_REQUIRED
        or notification.order_id is None
    ):
        return
    from healing.execution import manual_intervention_resolve

    manual_intervention_resolve(order_id=notification.order_id, user=user, now=now)
    notifications_resolve_for_order(
        order_id=notification.order_id,
        notification_type=NotificationType.HEALING_FAILED,
        user=user,
        note=f"resolved with notification {notification.pk}",
        now=now,
    )
