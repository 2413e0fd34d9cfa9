"""Worker start-up: log the seed's line and schedule one cycle shortly after."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready
from django.conf import settings

logger = logging.getLogger("healing.worker")


@worker_ready.connect
def schedule_startup_cycle(sender: Any = None, **kwargs: Any) -> None:
    interval_minutes = settings.HEALING_CYCLE_INTERVAL_SECONDS // 60
    logger.info("Self-healing worker started (runs every %s minutes)", interval_minutes)
    if not settings.HEALING_RUN_ON_WORKER_START:
        return
    from healing.tasks import run_cycle

    run_cycle.apply_async(
        kwargs={"trigger": "STARTUP"}, countdown=settings.HEALING_STARTUP_DELAY_SECONDS
    )
