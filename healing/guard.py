"""The blast-radius guard (docs/INVARIANTS.md, invariant 8).

When one cycle finds at least ``HEALING_GUARD_MIN_STUCK`` stuck orders that
are at least ``HEALING_GUARD_MAX_SHARE`` of all open orders, something
systemic is wrong (the vendor gateway is down): reassignment, cancellation
and escalation pause — those healings end SKIPPED/GUARD and are not attempts —
workflow retries still run, and one CRITICAL SYSTEM_ALERT stays open until
the condition clears.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from healing import events
from healing.models import RecoveryAction

# Actions the guard pauses; RETRY_WORKFLOW still runs.
GUARDED_ACTIONS = frozenset(
    {
        RecoveryAction.REASSIGN_VENDOR,
        RecoveryAction.CANCEL_ORDER,
        RecoveryAction.MANUAL_INTERVENTION,
    }
)


def guard_trips(*, stuck: int, open_orders: int) -> bool:
    if stuck < settings.HEALING_GUARD_MIN_STUCK or open_orders <= 0:
        return False
    return stuck / open_orders >= settings.HEALING_GUARD_MAX_SHARE


def guard_holds(*, action: str, tripped: bool) -> bool:
    """Whether a tripped guard keeps ``action`` from running."""
    return tripped and action in GUARDED_ACTIONS


def guard_report(
    *,
    tripped: bool,
    cycle_id: int,
    stuck: int,
    open_orders: int,
    by_action: dict[str, int],
    now: datetime,
) -> None:
    """Raise (or count) the guard's alert while it holds; resolve it once clear."""
    if tripped:
        events.guard_tripped_event(
            cycle_id=cycle_id, stuck=stuck, open_orders=open_orders, by_action=by_action, now=now
        )
    else:
        events.guard_cleared_event(now=now)
