"""Celery tasks: thin interfaces over notifications.services.

``notification_deliver`` owns the delivery retry policy: a round that left a
channel undelivered is retried (that channel only; delivered ones are not sent
again) with capped exponential backoff and jitter; the last try marks what
still fails as FAILED. Delivery is at least once: a receiver may dedupe on the
message's reference (``notification-<id>-<round>``).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.conf import settings

from config.retry import backoff_seconds
from notifications.services import notification_deliver_round, notifications_sweep_run

logger = logging.getLogger("notifications.tasks")


@shared_task(
    bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True, max_retries=None
)
def notification_deliver(self: Any, notification_id: int, round: int = 0) -> str:
    retries = self.request.retries or 0
    while True:
        final = retries >= settings.NOTIFICATION_DELIVERY_MAX_RETRIES
        result = notification_deliver_round(
            notification_id=notification_id, round=round, final=final
        )
        if result.skipped:
            return f"skipped: {result.skipped}"
        if not result.failed or final:
            return "sent" if result.complete else "failed: " + ",".join(sorted(result.failed))
        if self.request.is_eager:
            # In-process (no broker): nothing to wait for, and a Retry would
            # propagate into the caller's on-commit hook; retry at once.
            retries += 1
            continue
        countdown = backoff_seconds(
            retries,
            base=settings.NOTIFICATION_DELIVERY_BACKOFF_BASE,
            cap=settings.NOTIFICATION_DELIVERY_BACKOFF_MAX,
        )
        logger.info(
            "notification delivery retry scheduled",
            extra={
                "notification_id": notification_id,
                "round": round,
                "channels": sorted(result.failed),
                "retry": retries + 1,
                "countdown": f"{countdown:.2f}",
            },
        )
        raise self.retry(countdown=countdown)


@shared_task(ignore_result=True)
def notifications_sweep() -> dict[str, Any]:
    return notifications_sweep_run().as_dict()
