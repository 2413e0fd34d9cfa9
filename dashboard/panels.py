"""The operations panels (issues 18 and 19): guard banner, vendors, silences, at risk.

Read through the healing engine's own selectors (``vendors_health``,
``silences_active`` / ``silences_holding``, the cycles' ``guard_tripped``), so
the dashboard says what the engine does. Every function answers plain JSON
(ISO timestamps) for the page and its refresh endpoint.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Count
from django.urls import reverse

from dashboard.at_risk import at_risk
from healing.guard import GUARDED_ACTIONS
from healing.models import CycleStatus, HealingAction, HealingCycle, SkipReason
from healing.silence_models import Silence
from healing.silences import silences_active, silences_holding
from healing.vendor_health import vendors_health
from orders.models import CircuitState

__all__ = ["at_risk", "guard_state", "silences_panel", "vendors_panel"]

VENDOR_ROWS = 20
ACTION_WORDS = {
    "REASSIGN_VENDOR": "reassign",
    "CANCEL_ORDER": "cancel",
    "MANUAL_INTERVENTION": "escalate",
}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def guard_state() -> dict[str, Any]:
    """Whether the blast-radius guard holds healings back now.

    It holds while the newest finished cycle tripped it; "since" is the start
    of the first cycle of that unbroken run of tripped cycles, "held" the
    orders the newest one left SKIPPED/GUARD.
    """
    finished = HealingCycle.objects.filter(status=CycleStatus.FINISHED).order_by(
        "-started_at", "-id"
    )
    last = finished.values("id", "started_at", "guard_tripped", "detected", "open_orders").first()
    paused = [word for action, word in ACTION_WORDS.items() if action in GUARDED_ACTIONS]
    if last is None or not last["guard_tripped"]:
        return {"tripped": False, "paused": paused}
    clear = finished.filter(guard_tripped=False, started_at__lt=last["started_at"])
    last_clear = clear.values_list("started_at", flat=True).first()
    run = finished.filter(guard_tripped=True)
    if last_clear is not None:
        run = run.filter(started_at__gt=last_clear)
    since = run.order_by("started_at", "id").values_list("started_at", flat=True).first()
    held = (
        HealingAction.objects.filter(cycle_id=last["id"], skip_reason=SkipReason.GUARD)
        .values("order_id")
        .distinct()
        .count()
    )
    return {
        "tripped": True,
        "paused": paused,
        "since": _iso(since),
        "cycle_id": last["id"],
        "cycle_url": reverse("dashboard:cycle", args=[last["id"]]),
        "held": held,
        "stuck": last["detected"],
        "open_orders": last["open_orders"],
    }


def _vendor_row(health: Any) -> dict[str, Any]:
    circuit = health.circuit
    not_closed = health.state != CircuitState.CLOSED
    return {
        "id": health.vendor.pk,
        "name": health.vendor.name,
        "health": health.health,
        "state": health.state,
        "state_label": CircuitState(health.state).label,
        "open_since": _iso(circuit.opened_at) if circuit and not_closed else None,
        "retry_at": _iso(circuit.retry_at) if circuit and not_closed else None,
        "failures": circuit.failures if circuit else 0,
        "last_error": circuit.last_error if circuit else "",
        "calendar_open": health.open_now,
        "open_orders": health.open_orders,
        "stuck_orders": health.stuck_orders,
        "silenced": sum(s["holding"] for s in health.silences),
    }


_HEALTH_RANK = {"down": 0, "degraded": 1, "healthy": 2}


def vendors_panel(*, now: datetime, limit: int = VENDOR_ROWS) -> dict[str, Any]:
    """Every vendor's circuit and calendar, the unhealthy and closed ones first."""
    rows = [_vendor_row(h) for h in vendors_health(now=now)]
    rows.sort(key=lambda r: (_HEALTH_RANK[r["health"]], r["calendar_open"], r["name"], r["id"]))
    return {
        "rows": rows[:limit],
        "total": len(rows),
        "open_circuits": sum(1 for r in rows if r["state"] == CircuitState.OPEN),
        "closed_now": sum(1 for r in rows if not r["calendar_open"]),
    }


def _matchers(silence: Any) -> str:
    parts = []
    if silence.vendor_id:
        parts.append(f"vendor {silence.vendor.name}")
    if silence.status:
        parts.append(f"status {silence.status}")
    if silence.issue_type:
        parts.append(f"issue {silence.issue_type}")
    if silence.buyer_id:
        parts.append(f"buyer {silence.buyer.name}")
    return ", ".join(parts)


def silences_panel(*, now: datetime) -> dict[str, Any]:
    """Active silences (their weekly slot included) and the orders each holds."""
    active = silences_active(now=now)
    holding = silences_holding(silences=active)
    ids = [s.pk for s in active]
    loaded = {
        s.pk: s
        for s in Silence.objects.filter(pk__in=ids).select_related("vendor", "buyer", "owner")
    }
    recorded = dict(
        HealingAction.objects.filter(silence_id__in=ids)
        .order_by()
        .values_list("silence_id")
        .annotate(n=Count("id"))
    )
    rows = []
    for silence in active:
        full = loaded[silence.pk]
        rows.append(
            {
                "id": silence.pk,
                "matchers": _matchers(full),
                "starts_at": _iso(silence.starts_at),
                "ends_at": _iso(silence.ends_at),
                "recurring": bool(silence.recurrence_weekdays),
                "owner": full.owner.get_username() if full.owner else "",
                "comment": silence.comment,
                "holding": holding.get(silence.pk, 0),
                "skipped_total": recorded.get(silence.pk, 0),
            }
        )
    return {"rows": rows, "total": len(rows)}
