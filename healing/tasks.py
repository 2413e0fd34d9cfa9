"""Celery tasks: thin interfaces that take ids and call one service.

``heal_order`` is idempotent (claim tokens), so ``acks_late`` and
redelivery after a worker dies are safe; what to do after a transient error
is ``healing.execution.healing_retry_or_fail``'s decision.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError

from healing.cycle import cycles_refresh_pending, healing_cycle_run
from healing.dispatch import heal_order_send, heal_pairs
from healing.errors import HealingTransientError
from healing.execution import healing_execute, healing_retry_or_fail
from healing.liveness import connection_drop_broken
from healing.monitoring import monitoring_run
from healing.reports.prometheus import scrape_cache_warm
from healing.reports.rollup import metrics_rollup as metrics_rollup_run
from healing.sweeper import HealTask
from healing.sweeper import leases_sweep as leases_sweep_run

logger = logging.getLogger("healing")


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=None,
    # A pool child lost under it: its healings are re-sent at once (issue 16).
    base=HealTask,
    # Task events (received/started/succeeded: three broker publishes a heal)
    # for Flower's task views only with HEALING_TASK_EVENTS=true (off by
    # default: a quarter of the throughput; Flower keeps workers and every
    # other task; issue 15).
    send_events=settings.HEALING_TASK_EVENTS,
)
def heal_order(
    self: Any,
    healing_id: int,
    token: str,
    takeover: bool = False,
    more: list[list[Any]] | None = None,
) -> str | list[str]:
    """Run one healing, or (``more``) a batch of first sends one after another.

    Each healing of a batch keeps its own claim, lease and outcome: one that
    needs a retry is sent again on its own, and an error in one does not stop
    the others.
    """
    retries = self.request.retries or 0
    if not more:
        step = _heal_step(self.request, healing_id, token, takeover=takeover, retries=retries)
        if isinstance(step, str):
            return step
        if self.request.is_eager:
            # In-process (no broker): retry at once; an eager retry would raise.
            retried = heal_order.apply(args=(healing_id, step.token), retries=retries + 1)
            return str(retried.result)
        raise self.retry(args=(healing_id, step.token), countdown=step.countdown)
    pairs = heal_pairs((healing_id, token), {"more": more})
    deadline = _batch_deadline()
    statuses: list[str] = []
    for index, (pair_id, pair_token) in enumerate(pairs):
        if index and time.monotonic() > deadline:
            # Slow vendors: the rest goes on in a task of its own rather than
            # run into the time limit.
            _hand_on(pairs[index:])
            statuses += [HANDED_ON] * (len(pairs) - index)
            break
        try:
            step = _heal_step(self.request, pair_id, pair_token, takeover=False, retries=retries)
            if isinstance(step, _Retry):
                heal_order_send(
                    healing_id=pair_id,
                    token=step.token,
                    countdown=step.countdown,
                    retries=retries + 1,
                )
                step = "RETRY"
        except SoftTimeLimitExceeded:
            # This one and the ones not started go on; if this one was claimed,
            # its copy finds the token stale and its claim's lease brings it back.
            _hand_on(pairs[index:])
            raise
        except Exception:
            # A bug, or no broker for the retry: its lease brings the healing
            # back; the rest of the batch still runs.
            logger.exception("healing failed in a batch", extra={"healing_id": pair_id})
            step = "ERROR"
        statuses.append(step)
    return statuses


# A batch's healings it did not start, sent on in a task of their own.
HANDED_ON = "HANDED_ON"


def _batch_deadline() -> float:
    """When a batch stops starting healings: one started before it still has a
    whole vendor call and the lease margin inside the soft time limit."""
    soft = settings.CELERY_TASK_SOFT_TIME_LIMIT
    if not soft or soft <= 0:
        return math.inf
    room = soft - settings.VENDOR_GATEWAY_TIMEOUT_SECONDS - settings.HEALING_LEASE_MARGIN_SECONDS
    return time.monotonic() + max(room, 0.0)


def _hand_on(pairs: list[tuple[int, str]]) -> None:
    """Send ``pairs`` (not started, their tokens unchanged) as a batch of their
    own, urgent: they have waited their turn once already."""
    if not pairs:
        return
    (first_id, first_token), *rest = pairs
    try:
        heal_order_send(healing_id=first_id, token=first_token, more=rest, urgent=True)
    except Exception:  # their dispatch leases bring them back
        logger.exception(
            "could not hand a batch's rest on", extra={"healing_ids": [h for h, _ in pairs]}
        )
        return
    logger.info("batch handed on", extra={"healing_ids": [h for h, _ in pairs]})


@dataclass(frozen=True)
class _Retry:
    token: str
    countdown: float


def _heal_step(
    request: Any, healing_id: int, token: str, *, takeover: bool, retries: int
) -> str | _Retry:
    """One attempt at one healing: its outcome, or when to retry with which token."""
    # Cheap: a round trip only if an error happened on this connection.
    connection_drop_broken(check=False)
    try:
        outcome = healing_execute(healing_id=healing_id, token=token, retries=retries)
        if outcome.lease_left is not None and not takeover and _redelivered(request):
            # Redelivered after its worker died, the claim held by the dead
            # child: come back when that lease runs out and take over, rather
            # than wait for the sweeper and the tail of the queue.
            heal_order_send(
                healing_id=healing_id,
                token=token,
                countdown=outcome.lease_left + 0.5,
                takeover=True,
            )
        return outcome.status
    except HealingTransientError as exc:
        retry_token, error = str(exc.token), str(exc)
        if isinstance(exc.__cause__, OperationalError | InterfaceError):
            connection_drop_broken()  # a broken connection must not serve the retry
    except (OperationalError, InterfaceError) as exc:
        # Failed before the claim: the same token is still the valid one.
        retry_token, error = token, f"database: {exc}"
        connection_drop_broken()
    decision = healing_retry_or_fail(
        healing_id=healing_id, token=retry_token, error=error, retries=retries
    )
    if not decision.retry:
        return "FAILED"
    return _Retry(retry_token, decision.countdown)


def _redelivered(request: Any) -> bool:
    return bool((request.delivery_info or {}).get("redelivered"))


@shared_task(ignore_result=True)
def run_cycle(trigger: str = "BEAT") -> dict[str, Any]:
    # A worker idle through a database restart holds a dead connection.
    connection_drop_broken()
    return healing_cycle_run(trigger=trigger).as_dict()


@shared_task(ignore_result=True)
def leases_sweep() -> dict[str, int]:
    """Every HEALING_SWEEP_SECONDS: re-dispatch healings whose lease ran out."""
    connection_drop_broken()
    return leases_sweep_run().as_dict()


@shared_task(ignore_result=True)
def metrics_rollup(days: int = 1) -> int:
    """Every minute: recompute today's healing_metrics row, recount cycles still
    in flight, and keep /metrics' once-a-day cache of closed days warm."""
    connection_drop_broken()
    rows = metrics_rollup_run(days=days)
    cycles_refresh_pending()
    scrape_cache_warm()
    return len(rows)


@shared_task(ignore_result=True)
def monitoring_check() -> dict[str, Any]:
    """Every minute: system conditions (failure rate, beat, vendors) and recovered orders."""
    connection_drop_broken()
    return monitoring_run().as_dict()


@shared_task(ignore_result=True)
def noop(index: int = 0) -> None:
    """Does nothing: ``bench_healing`` drains it to measure what the broker and
    the worker cost alone, on the healing queue the heal tasks use."""
