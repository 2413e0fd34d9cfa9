"""Celery tasks: thin interfaces that load ids and call services.

``heal_order`` owns the retry policy: transient errors (vendor gateway,
database connection) retry with capped exponential backoff and jitter; after
the last retry the healing ends FAILED with a notification. Domain errors
never retry. The task is idempotent (claim tokens), so ``acks_late`` and
redelivery after a worker dies are safe.
"""

from __future__ import annotations

import logging
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections

from healing import metrics as healing_metrics
from healing import prometheus
from healing.services import (
    HealingTransientError,
    cycles_refresh_pending,
    healing_cycle_run,
    healing_execute,
    healing_fail,
)

logger = logging.getLogger("healing.tasks")


def backoff_seconds(retries: int) -> float:
    """Capped exponential backoff with "equal jitter": retry n waits between
    half and all of ``base * 2**n`` (capped), so delays grow yet never align."""
    ceiling = min(
        settings.HEALING_TASK_BACKOFF_MAX, settings.HEALING_TASK_BACKOFF_BASE * (2**retries)
    )
    return ceiling / 2 + random.uniform(0, ceiling / 2)


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=None,  # the policy below decides, from settings
)
def heal_order(self: Any, healing_id: int, token: str) -> str:
    retries = self.request.retries or 0
    try:
        return healing_execute(healing_id=healing_id, token=token, retries=retries).status
    except HealingTransientError as exc:
        retry_token, error = str(exc.token), str(exc)
        if isinstance(exc.__cause__, (OperationalError, InterfaceError)):
            close_old_connections()
    except (OperationalError, InterfaceError) as exc:
        # Failed before the claim: the same token is still the valid one.
        retry_token, error = token, f"database: {exc}"
        close_old_connections()
    if retries >= settings.HEALING_TASK_MAX_RETRIES:
        healing_fail(healing_id=healing_id, token=retry_token, error=error, retries=retries)
        return "FAILED"
    if self.request.is_eager:
        # In-process mode (no broker): retry at once; Celery's eager retry
        # would propagate its Retry exception instead.
        result = heal_order.apply(args=(healing_id, retry_token), retries=retries + 1)
        return str(result.result)
    countdown = backoff_seconds(retries)
    logger.info(
        "healing retry scheduled",
        extra={"healing_id": healing_id, "retry": retries + 1, "countdown": round(countdown, 2)},
    )
    raise self.retry(args=(healing_id, retry_token), countdown=countdown)


def dispatch_healings(pairs: list[tuple[int, str]]) -> None:
    """Send one heal_order per (healing id, claim token).

    Publishing is bound by broker round trips (a task message and its
    task-sent event each), not by CPU, so large batches are split over a few
    threads, each reusing one producer and connection for its whole share.
    """
    if not pairs:
        return
    if heal_order.app.conf.task_always_eager:
        # In-process mode: no broker to open a producer on.
        for healing_id, token in pairs:
            heal_order.apply_async(args=(healing_id, token))
        return
    threads = max(1, min(settings.HEALING_DISPATCH_THREADS, len(pairs) // 250))
    shares = [pairs[index::threads] for index in range(threads)]
    if threads == 1:
        _publish(shares[0])
        return
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dispatch") as pool:
        for future in [pool.submit(_publish, share) for share in shares]:
            future.result()


def _publish(pairs: list[tuple[int, str]]) -> None:
    with heal_order.app.producer_or_acquire() as producer:
        for healing_id, token in pairs:
            heal_order.apply_async(args=(healing_id, token), producer=producer)


@shared_task(ignore_result=True)
def run_cycle(trigger: str = "BEAT") -> dict[str, Any]:
    return healing_cycle_run(trigger=trigger).as_dict()


@shared_task(ignore_result=True)
def metrics_rollup(days: int = 1) -> int:
    """Beat runs this every minute: recompute today's healing_metrics row, and
    keep /metrics' once-a-day cache of closed days warm."""
    rows = healing_metrics.metrics_rollup(days=days)
    cycles_refresh_pending()
    prometheus.scrape_cache_warm()
    return len(rows)


@shared_task(ignore_result=True)
def noop(index: int = 0) -> None:
    """Does nothing: ``bench_healing`` drains it to measure what the broker and
    the worker cost alone, on the healing queue the heal tasks use."""
