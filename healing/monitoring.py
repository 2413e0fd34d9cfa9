"""The healing engine watching itself: system conditions and recovered orders.

Every minute (beat, ``healing.tasks.monitoring_check``):

- the failure rate over a window: CRITICAL above its threshold, MEDIUM above
  half of it;
- the cycle's heartbeat: MEDIUM when late by two intervals, CRITICAL ("beat
  is down") past three;
- vendors whose orders keep getting stuck today: LOW, closed when the day ends;
- order notifications whose order recovered or finished are resolved, and a
  recovered order on manual hold is handed back to automation.

Each step filters on the current state, so a re-run changes nothing twice.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from healing import events, messages
from healing.execution import manual_intervention_resolve
from healing.models import ATTEMPT_STATUSES, HealingAction, RecoveryStatus
from healing.selectors import cycle_interval_seconds, last_cycle_started_at
from notifications.models import AdminNotification, NotificationType, Severity
from notifications.selectors import SWEEP_BATCH, open_condition_keys
from notifications.services import notifications_close
from orders.models import TERMINAL_STATUSES

logger = logging.getLogger("healing.monitoring")


class AlertKey:
    """``dedup_key`` of each system condition: one open notification per condition."""

    FAILURE_RATE = "failure_rate"
    FAILURE_RATE_WARNING = "failure_rate_warning"
    BEAT_DOWN = "beat_down"
    CYCLE_LATE = "cycle_late"
    VENDOR_TIMEOUTS_PREFIX = "vendor_timeouts:"

    @staticmethod
    def vendor_timeouts(*, vendor_id: int, day: date) -> str:
        return f"vendor_timeouts:{vendor_id}:{day.isoformat()}"


ALERT_SEVERITY: dict[str, str] = {
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


@dataclass
class MonitoringResult:
    resolved: int = 0
    raised: list[str] = field(default_factory=list)
    cleared: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def monitoring_run(*, now: datetime | None = None) -> MonitoringResult:
    now = now or timezone.now()
    result = MonitoringResult()
    result.resolved = recovered_orders_resolve(now=now)
    failure_rate_check(now=now, result=result)
    cycle_heartbeat_check(now=now, result=result)
    vendor_timeouts_check(now=now, result=result)
    logger.info("healing monitoring", extra=result.as_dict())
    return result


def _condition_set(
    *,
    key: str,
    content: messages.Content | None,
    now: datetime,
    result: MonitoringResult,
    severity: str | None = None,
) -> None:
    """Raise (or count) the condition's alert while it holds; resolve it when it clears."""
    if content is not None:
        raised = events.system_condition_event(
            key=key, severity=severity or ALERT_SEVERITY[key], content=content, now=now
        )
        if raised.created:
            result.raised.append(key)
    else:
        result.cleared += events.system_condition_cleared_event(key=key, now=now)


# --- Failure rate ----------------------------------------------------------------


@dataclass(frozen=True)
class FailureRate:
    failed: int
    total: int

    @property
    def rate(self) -> float:
        return self.failed / self.total if self.total else 0.0


def healing_failure_rate(*, now: datetime, window_minutes: int) -> FailureRate:
    """Healings completed in the window that ended FAILED or MANUAL_REQUIRED,
    over all that counted as attempts (docs/DECISIONS.md "Success": 1 - success rate)."""
    counts = HealingAction.objects.filter(
        completed_at__gte=now - timedelta(minutes=window_minutes),
        completed_at__lte=now,
        recovery_status__in=ATTEMPT_STATUSES,
    ).aggregate(
        total=Count("id"),
        failed=Count(
            "id",
            filter=Q(recovery_status__in=(RecoveryStatus.FAILED, RecoveryStatus.MANUAL_REQUIRED)),
        ),
    )
    return FailureRate(failed=counts["failed"] or 0, total=counts["total"] or 0)


def failure_rate_check(*, now: datetime, result: MonitoringResult) -> None:
    threshold = settings.NOTIFICATION_FAILURE_RATE_THRESHOLD
    window = settings.NOTIFICATION_FAILURE_RATE_WINDOW_MINUTES
    rate = healing_failure_rate(now=now, window_minutes=window)
    enough = rate.total >= settings.NOTIFICATION_FAILURE_RATE_MIN_HEALINGS
    critical = enough and rate.rate > threshold
    warning = enough and not critical and rate.rate > threshold / 2

    def content(is_warning: bool) -> messages.Content:
        return messages.failure_rate_content(
            rate=rate.rate,
            failed=rate.failed,
            total=rate.total,
            threshold=threshold,
            window_minutes=window,
            warning=is_warning,
        )

    with transaction.atomic():
        _condition_set(
            key=AlertKey.FAILURE_RATE,
            content=content(False) if critical else None,
            now=now,
            result=result,
        )
        # The warning is superseded by the alert, and cleared with it.
        _condition_set(
            key=AlertKey.FAILURE_RATE_WARNING,
            content=content(True) if warning else None,
            now=now,
            result=result,
        )


# --- The cycle's heartbeat ---------------------------------------------------------


def cycle_heartbeat_check(*, now: datetime, result: MonitoringResult) -> None:
    """No cycle for three intervals: beat (or the cycle job) is down; two: late.
    A fresh install that never ran a cycle is not an outage."""
    last = last_cycle_started_at()
    interval = cycle_interval_seconds()
    age = (now - last).total_seconds() if last is not None else 0.0
    down = last is not None and age > BEAT_DOWN_INTERVALS * interval
    late = last is not None and not down and age > CYCLE_LATE_INTERVALS * interval
    with transaction.atomic():
        for key, active in ((AlertKey.BEAT_DOWN, down), (AlertKey.CYCLE_LATE, late)):
            content = (
                messages.cycle_late_content(
                    last_cycle_at=last,
                    interval_seconds=interval,
                    now=now,
                    down=key == AlertKey.BEAT_DOWN,
                )
                if active and last is not None
                else None
            )
            _condition_set(key=key, content=content, now=now, result=result)


# --- Vendors whose orders keep getting stuck ------------------------------------------


def vendors_with_timeouts(
    *, since: datetime, minimum: int, limit: int = 100
) -> list[tuple[int, str, int]]:
    """(vendor id, name, count) of vendors whose orders were detected stuck at
    least ``minimum`` times since ``since`` (dry runs included: they were stuck)."""
    return list(
        HealingAction.objects.filter(issue_detected_at__gte=since, previous_vendor__isnull=False)
        .order_by()
        .values_list("previous_vendor_id", "previous_vendor__name")
        .annotate(n=Count("id"))
        .filter(n__gte=minimum)
        .order_by("-n")[:limit]
    )


def vendor_timeouts_check(*, now: datetime, result: MonitoringResult) -> None:
    """LOW: vendors whose orders keep getting stuck today; closed when the day ends."""
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    suffix = f":{day_start.date().isoformat()}"
    with transaction.atomic():
        for vendor_id, name, count in vendors_with_timeouts(
            since=day_start, minimum=settings.NOTIFICATION_VENDOR_TIMEOUTS_PER_DAY
        ):
            _condition_set(
                key=AlertKey.vendor_timeouts(vendor_id=vendor_id, day=day_start.date()),
                content=messages.vendor_timeouts_content(
                    vendor_id=vendor_id, vendor_name=name, timeouts=count, day=day_start.date()
                ),
                now=now,
                result=result,
                severity=VENDOR_TIMEOUTS_SEVERITY,
            )
        for key in open_condition_keys(prefix=AlertKey.VENDOR_TIMEOUTS_PREFIX):
            if not key.endswith(suffix):
                _condition_set(key=key, content=None, now=now, result=result)


# --- Orders that recovered ----------------------------------------------------------


def notifications_recovered(*, limit: int = SWEEP_BATCH) -> list[tuple[int, str, int, str]]:
    """Open order notifications whose order finished or left the stuck episode.

    (id, notification type, order id, order status). The episode is the one the
    latest healing detected: a status change or a restarted stuck clock since
    then is a recovery.
    """
    finished = Q(order__status__in=TERMINAL_STATUSES)
    moved_on = Q(healing_action__isnull=False) & (
        ~Q(order__status=F("healing_action__detected_status"))
        | Q(order__stuck_since__gt=F("healing_action__episode_started_at"))
    )
    no_healing = Q(healing_action__isnull=True, order__stuck_since__gt=F("created_at"))
    return list(
        AdminNotification.objects.filter(resolved_at__isnull=True, order__isnull=False)
        .filter(finished | moved_on | no_healing)
        .order_by("id")
        .values_list("id", "notification_type", "order_id", "order__status")[:limit]
    )


def recovered_orders_resolve(*, now: datetime) -> int:
    """Close order notifications whose order recovered or finished.

    A recovered order on manual hold is handed back to automation too: the hold
    would otherwise keep it out of detection the next time it gets stuck.
    """
    rows = notifications_recovered()
    if not rows:
        return 0
    resolved = 0
    with transaction.atomic():
        for finished in (True, False):
            ids = [
                pk
                for pk, _type, _order, status in rows
                if (status in TERMINAL_STATUSES) == finished
            ]
            if ids:
                note = "order finished" if finished else "order recovered"
                resolved += notifications_close(ids=ids, note=note, now=now)
        for _pk, notification_type, order_id, _status in rows:
            if notification_type == NotificationType.MANUAL_INTERVENTION_REQUIRED:
                manual_intervention_resolve(order_id=order_id, user=None, now=now)
    return resolved
