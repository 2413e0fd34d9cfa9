"""The API's use cases that span more than one engine call.

A manual heal is "initiate, then execute inline, else hand the retry to the
worker"; a manual cycle is "run, then wait a bounded time for its outcomes".
Views call one function each from here. They compose public services only
(no ORM writes of their own) and would sit well in healing/services.py once
its owner takes them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection

from healing.api.errors import ApiNotFound
from healing.models import CycleStatus, HealingAction, HealingCycle, RecoveryStatus, Trigger
from healing.services import (
    CycleResult,
    HealingTransientError,
    cycle_refresh_counts,
    healing_cycle_run,
    healing_execute,
    healing_initiate,
)
from orders.errors import DomainError
from orders.models import Order

logger = logging.getLogger("healing.api")

# PostgreSQL's bigint: a larger id names no row, and must not reach the database.
MAX_ID = 2**63 - 1


class CycleAlreadyRunning(DomainError):
    code = "cycle_running"
    http_status = 409


@dataclass(frozen=True)
class HealReport:
    healing: HealingAction
    retry_scheduled: bool


@dataclass(frozen=True)
class CycleReport:
    cycle: HealingCycle
    result: CycleResult
    waited_seconds: float

    @property
    def timed_out(self) -> bool:
        return self.cycle.pending > 0


def order_get_or_404(*, order_id: int) -> Order:
    order = Order.objects.filter(pk=order_id).first() if 0 < order_id <= MAX_ID else None
    if order is None:
        raise ApiNotFound(f"order {order_id} does not exist", field="orderId")
    return order


def healing_request(
    *,
    order_id: int,
    requested_by: Any,
    issue_type: str | None = None,
    recovery_action: str | None = None,
) -> HealReport:
    """Heal one order now, on an operator's request.

    The healing runs inline so the caller sees its outcome. A transient
    failure (vendor gateway down) is not an error of the request: the healing
    goes to the worker, which retries it with backoff, and the caller gets it
    as it stands. An order that already has an active healing gets that one.
    """
    from healing.tasks import backoff_seconds, heal_order  # tasks import services

    order = order_get_or_404(order_id=order_id)
    healing = healing_initiate(
        order=order,
        trigger=Trigger.API,
        issue_type=issue_type,
        recovery_action=recovery_action,
        requested_by=requested_by,
    )
    retry_scheduled = False
    if healing.recovery_status == RecoveryStatus.PENDING:
        try:
            healing_execute(healing_id=healing.pk, token=healing.claim_token)
        except HealingTransientError as exc:
            logger.info(
                "manual healing hit a transient error; handed to the worker",
                extra={"healing_id": healing.pk, "error": str(exc)},
            )
            # The inline attempt was the first: the task continues at retry 1.
            heal_order.apply_async(
                args=(healing.pk, str(exc.token)), countdown=backoff_seconds(0), retries=1
            )
            retry_scheduled = True
    healing = HealingAction.objects.select_related("requested_by").get(pk=healing.pk)
    return HealReport(healing=healing, retry_scheduled=retry_scheduled)


def cycle_run_and_wait(
    *, trigger: str = Trigger.API, wait_seconds: float | None = None
) -> CycleReport:
    """Run one cycle, then poll its healings until none is pending or time is up.

    In-process (no broker) the healings are finished when the cycle returns;
    with workers they finish on their own clock, so the wait is bounded and
    the answer says how many are still pending.
    """
    wait = settings.HEALING_API_WAIT_SECONDS if wait_seconds is None else wait_seconds
    started = time.monotonic()
    result = healing_cycle_run(trigger=trigger)
    if not result.ran:
        running = HealingCycle.objects.filter(status=CycleStatus.RUNNING).first()
        reason = (
            f"cycle {running.pk} ({running.trigger}) has been running since "
            f"{running.started_at.isoformat()}"
            if running
            else result.reason or "another cycle is running"
        )
        raise CycleAlreadyRunning(f"another cycle is running: {reason}")
    cycle = HealingCycle.objects.get(pk=result.cycle_id)
    deadline = started + wait
    while cycle.pending and time.monotonic() < deadline:
        time.sleep(min(settings.HEALING_API_POLL_SECONDS, max(deadline - time.monotonic(), 0)))
        cycle_refresh_counts(cycle=cycle)
    return CycleReport(cycle=cycle, result=result, waited_seconds=time.monotonic() - started)


def health_check() -> dict[str, dict[str, Any]]:
    """Database and broker reachability, each with its own verdict."""
    checks: dict[str, dict[str, Any]] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        checks["database"] = {"ok": True, "detail": connection.vendor}
    except Exception as exc:  # any failure means "not healthy", never a 500
        checks["database"] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:300]}
    if not settings.CELERY_BROKER_URL:
        checks["broker"] = {"ok": True, "detail": "none configured: tasks run in-process"}
        return checks
    from config.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
        checks["broker"] = {"ok": True, "detail": conn.transport_cls}
    except Exception as exc:  # a broker that does not answer is "unhealthy"
        checks["broker"] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:300]}
    return checks
