"""Vendor health: one circuit breaker per vendor, shared by every worker (invariant 14).

The state lives in PostgreSQL (``vendor_circuits``), never in process memory:

- CLOSED: calls go. ``VENDOR_CIRCUIT_FAILURE_THRESHOLD`` failures within
  ``VENDOR_CIRCUIT_WINDOW_SECONDS`` with no success between them open it.
- OPEN: no offer and no retry towards the vendor until ``retry_at`` (the
  cool-down, ``VENDOR_CIRCUIT_COOLDOWN_SECONDS``).
- HALF_OPEN: after the cool-down exactly one caller wins the probe (a
  conditional UPDATE); its outcome closes the circuit or re-opens it. A probe
  whose caller died frees itself after ``VENDOR_CIRCUIT_PROBE_SECONDS``.

Callers learn the state from the load they already do (the healing load
joins this table), so a healthy vendor costs no statement: only a failure,
a probe or the first success after failures writes here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orders.models import CircuitState, VendorCircuit

ALLOW = "ALLOW"
PROBE = "PROBE"
DENY = "DENY"

OPENED = "OPENED"
REOPENED = "REOPENED"
CLOSED = "CLOSED"


@dataclass(frozen=True)
class CircuitView:
    """What a caller read about a vendor's circuit (no row = closed, no failures)."""

    vendor_id: int
    state: str = CircuitState.CLOSED
    failures: int = 0
    retry_at: datetime | None = None

    @property
    def healthy(self) -> bool:
        return self.state == CircuitState.CLOSED and not self.failures


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def circuit_get(*, vendor_id: int) -> CircuitView:
    row = VendorCircuit.objects.filter(pk=vendor_id).first()
    if row is None:
        return CircuitView(vendor_id=vendor_id)
    return CircuitView(vendor_id, row.state, row.failures, row.retry_at)


def circuit_blocked(*, view: CircuitView, now: datetime) -> bool:
    """Whether no call may go (open, or its one probe is out)."""
    return view.state != CircuitState.CLOSED and (view.retry_at is None or view.retry_at > now)


def circuit_permit(*, view: CircuitView, now: datetime | None = None) -> str:
    """ALLOW (closed), PROBE (this caller won the half-open probe) or DENY."""
    if view.state == CircuitState.CLOSED:
        return ALLOW
    now = now or timezone.now()
    if circuit_blocked(view=view, now=now):
        return DENY
    probe_until = now + timedelta(seconds=_setting("VENDOR_CIRCUIT_PROBE_SECONDS", 30))
    won = (
        VendorCircuit.objects.filter(pk=view.vendor_id, retry_at__lte=now)
        .exclude(state=CircuitState.CLOSED)
        .update(state=CircuitState.HALF_OPEN, retry_at=probe_until, updated_at=now)
    )
    return PROBE if won else DENY


def circuit_success(*, view: CircuitView, now: datetime | None = None) -> str | None:
    """A call to the vendor went through. Returns CLOSED when this closed the circuit."""
    if view.healthy:
        return None  # the common case: nothing to write
    now = now or timezone.now()
    closed = (
        VendorCircuit.objects.filter(pk=view.vendor_id)
        .exclude(state=CircuitState.CLOSED)
        .update(
            state=CircuitState.CLOSED,
            failures=0,
            window_started_at=None,
            retry_at=None,
            closed_at=now,
            updated_at=now,
        )
    )
    if closed:
        return CLOSED
    VendorCircuit.objects.filter(pk=view.vendor_id, failures__gt=0).update(
        failures=0, window_started_at=None, updated_at=now
    )
    return None


def circuit_failure(*, vendor_id: int, error: str, now: datetime | None = None) -> str | None:
    """A call failed (timeout, 5xx, connection). Returns OPENED / REOPENED on a transition.

    Under the circuit row's lock, so concurrent failures count one by one and
    exactly one of them opens the circuit.
    """
    now = now or timezone.now()
    threshold = int(_setting("VENDOR_CIRCUIT_FAILURE_THRESHOLD", 5))
    window = timedelta(seconds=_setting("VENDOR_CIRCUIT_WINDOW_SECONDS", 300))
    cooldown = timedelta(seconds=_setting("VENDOR_CIRCUIT_COOLDOWN_SECONDS", 60))
    with transaction.atomic():
        VendorCircuit.objects.bulk_create(
            [VendorCircuit(vendor_id=vendor_id, updated_at=now)], ignore_conflicts=True
        )
        row = VendorCircuit.objects.select_for_update().get(pk=vendor_id)
        fields = ["failures", "last_failure_at", "last_error", "updated_at"]
        row.last_failure_at, row.last_error, row.updated_at = now, error[:500], now
        transition = None
        if row.state == CircuitState.HALF_OPEN:
            row.state, row.retry_at, row.opened_at = CircuitState.OPEN, now + cooldown, now
            row.failures += 1
            fields += ["state", "retry_at", "opened_at"]
            transition = REOPENED
        elif row.state == CircuitState.OPEN:
            row.failures += 1  # a call that left before it opened
        else:
            if row.window_started_at is None or now - row.window_started_at > window:
                row.failures, row.window_started_at = 1, now
            else:
                row.failures += 1
            fields.append("window_started_at")
            if row.failures >= threshold:
                row.state, row.retry_at, row.opened_at = CircuitState.OPEN, now + cooldown, now
                fields += ["state", "retry_at", "opened_at"]
                transition = OPENED
        row.save(update_fields=fields)
    return transition


def circuits_not_closed() -> list[VendorCircuit]:
    """Every vendor whose circuit is open or half-open (a partial index)."""
    return list(VendorCircuit.objects.exclude(state=CircuitState.CLOSED).select_related("vendor"))
