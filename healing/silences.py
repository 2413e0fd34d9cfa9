"""Silences: which stuck orders are held, and the services that change a silence.

The cycle asks ``silences_apply`` for the rows it is about to create: a
matching order's healing is recorded SKIPPED (reason SILENCED, with the
silence) and never dispatched, so no action runs and no notification is
raised. When the silence ends, the next cycle finds the order still stuck
and heals it. Every write here records a ``SilenceEvent`` in its transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from healing.models import HealingAction, RecoveryStatus, SkipReason
from healing.silence_models import Silence, SilenceAction, SilenceEvent
from orders.errors import DomainError
from orders.models import Order

MATCHERS = ("vendor_id", "buyer_id", "status", "issue_type")


class SilenceInvalid(DomainError):
    code = "silence_invalid"
    http_status = 400


# --- Matching --------------------------------------------------------------------


def silence_is_active(*, silence: Silence, now: datetime) -> bool:
    """Inside its window and, for a weekly recurrence, inside today's slot."""
    if not silence.starts_at <= now < silence.ends_at:
        return False
    if not silence.recurrence_weekdays:
        return True
    local = now.astimezone(ZoneInfo(silence.time_zone or "UTC"))
    if local.weekday() not in {int(day) for day in silence.recurrence_weekdays}:
        return False
    start = silence.recurrence_start or time(0)
    end = silence.recurrence_end
    clock = local.time().replace(tzinfo=None)
    return start <= clock and (end is None or clock < end)


def silences_active(*, now: datetime) -> list[Silence]:
    """Silences holding orders now (the window index, then the weekly slot)."""
    candidates = Silence.objects.filter(starts_at__lte=now, ends_at__gt=now).order_by("id")
    return [silence for silence in candidates if silence_is_active(silence=silence, now=now)]


def silence_matches(
    *,
    silence: Silence,
    vendor_id: int | None,
    buyer_id: int | None,
    status: str,
    issue_type: str,
) -> bool:
    """Every matcher the silence gives must match (an empty one matches all)."""
    return (
        (silence.vendor_id is None or silence.vendor_id == vendor_id)
        and (silence.buyer_id is None or silence.buyer_id == buyer_id)
        and (not silence.status or silence.status == status)
        and (not silence.issue_type or silence.issue_type == issue_type)
    )


def silences_apply(*, rows: Iterable[HealingAction], now: datetime) -> int:
    """Mark the cycle's new PENDING rows a silence holds as SKIPPED/SILENCED.

    One read of the active silences (a handful of rows); the orders' buyers
    are read only when a buyer silence is active. Returns rows silenced.
    """
    pending = [row for row in rows if row.recovery_status == RecoveryStatus.PENDING]
    if not pending:
        return 0
    active = silences_active(now=now)
    if not active:
        return 0
    buyers: dict[int, int] = {}
    if any(silence.buyer_id is not None for silence in active):
        buyers = dict(
            Order.objects.filter(pk__in=[row.order_id for row in pending]).values_list(
                "id", "buyer_id"
            )
        )
    silenced = 0
    for row in pending:
        for silence in active:
            if silence_matches(
                silence=silence,
                vendor_id=row.previous_vendor_id,
                buyer_id=buyers.get(row.order_id),
                status=row.detected_status,
                issue_type=row.issue_type,
            ):
                row.recovery_status = RecoveryStatus.SKIPPED
                row.skip_reason = SkipReason.SILENCED
                row.silence_id = silence.pk
                row.completed_at = now
                row.recovery_duration_seconds = 0.0
                row.claim_token = None
                row.lease_expires_at = None
                silenced += 1
                break
    return silenced


def silences_holding(*, silences: Iterable[Silence]) -> dict[int, int]:
    """How many orders each silence holds: orders it skipped that are still in
    the stuck episode they were detected in."""
    ids = [silence.pk for silence in silences]
    if not ids:
        return {}
    return dict(
        HealingAction.objects.filter(
            silence_id__in=ids,
            order__status=F("detected_status"),
            order__stuck_since=F("episode_started_at"),
        )
        .order_by()
        .values_list("silence_id")
        .annotate(n=Count("order_id", distinct=True))
    )


# --- Services ----------------------------------------------------------------------


@dataclass(frozen=True)
class SilenceSpec:
    starts_at: datetime
    ends_at: datetime
    comment: str
    vendor_id: int | None = None
    buyer_id: int | None = None
    status: str = ""
    issue_type: str = ""
    recurrence_weekdays: tuple[int, ...] = ()
    recurrence_start: time | None = None
    recurrence_end: time | None = None
    time_zone: str = "UTC"


def _snapshot(silence: Silence) -> dict[str, Any]:
    return {
        "vendor_id": silence.vendor_id,
        "buyer_id": silence.buyer_id,
        "status": silence.status,
        "issue_type": silence.issue_type,
        "starts_at": silence.starts_at.isoformat(),
        "ends_at": silence.ends_at.isoformat(),
        "recurrence_weekdays": list(silence.recurrence_weekdays or []),
        "recurrence_start": str(silence.recurrence_start or ""),
        "recurrence_end": str(silence.recurrence_end or ""),
        "time_zone": silence.time_zone,
        "comment": silence.comment,
    }


def _event(*, silence: Silence, action: str, actor: Any, now: datetime) -> None:
    SilenceEvent.objects.create(
        silence=silence,
        action=action,
        actor=actor if getattr(actor, "pk", None) else None,
        snapshot=_snapshot(silence),
        created_at=now,
    )


def _validate(spec: SilenceSpec) -> None:
    if spec.ends_at <= spec.starts_at:
        raise SilenceInvalid("a silence ends after it starts", field="endsAt")
    if not any((spec.vendor_id, spec.buyer_id, spec.status, spec.issue_type)):
        raise SilenceInvalid(
            "a silence needs a matcher: vendor, buyer, status or issue type", field="vendorId"
        )
    if not spec.comment.strip():
        raise SilenceInvalid("a silence says why (comment)", field="comment")
    if any(not 0 <= day <= 6 for day in spec.recurrence_weekdays):
        raise SilenceInvalid("weekdays are 0 (Monday) to 6 (Sunday)", field="recurrenceWeekdays")
    try:
        ZoneInfo(spec.time_zone or "UTC")
    except (KeyError, ValueError) as exc:
        raise SilenceInvalid(f"unknown time zone {spec.time_zone!r}", field="timeZone") from exc


@transaction.atomic
def silence_create(*, spec: SilenceSpec, owner: Any, now: datetime | None = None) -> Silence:
    now = now or timezone.now()
    _validate(spec)
    silence = Silence.objects.create(
        vendor_id=spec.vendor_id,
        buyer_id=spec.buyer_id,
        status=spec.status,
        issue_type=spec.issue_type,
        starts_at=spec.starts_at,
        ends_at=spec.ends_at,
        recurrence_weekdays=list(spec.recurrence_weekdays),
        recurrence_start=spec.recurrence_start,
        recurrence_end=spec.recurrence_end,
        time_zone=spec.time_zone or "UTC",
        owner=owner if getattr(owner, "pk", None) else None,
        comment=spec.comment,
        created_at=now,
        updated_at=now,
    )
    _event(silence=silence, action=SilenceAction.CREATED, actor=owner, now=now)
    return silence


@transaction.atomic
def silence_update(
    *, silence_id: int, actor: Any, changes: dict[str, Any], now: datetime | None = None
) -> Silence:
    """Change a silence's fields; a later end alone is recorded as EXTENDED."""
    now = now or timezone.now()
    silence = Silence.objects.select_for_update().get(pk=silence_id)
    before_end = silence.ends_at
    unknown = set(changes) - {f.name for f in SilenceSpec.__dataclass_fields__.values()}
    if unknown:
        raise SilenceInvalid(f"unknown field(s): {', '.join(sorted(unknown))}")
    merged = {**_spec_of(silence).__dict__, **changes}
    merged["recurrence_weekdays"] = tuple(merged["recurrence_weekdays"])
    spec = SilenceSpec(**merged)
    _validate(spec)
    for name, value in spec.__dict__.items():
        setattr(silence, name, list(value) if name == "recurrence_weekdays" else value)
    silence.updated_at = now
    silence.save(update_fields=[*spec.__dict__, "updated_at"])
    extended = set(changes) == {"ends_at"} and silence.ends_at > before_end
    _event(
        silence=silence,
        action=SilenceAction.EXTENDED if extended else SilenceAction.UPDATED,
        actor=actor,
        now=now,
    )
    return silence


def _spec_of(silence: Silence) -> SilenceSpec:
    return SilenceSpec(
        starts_at=silence.starts_at,
        ends_at=silence.ends_at,
        comment=silence.comment,
        vendor_id=silence.vendor_id,
        buyer_id=silence.buyer_id,
        status=silence.status,
        issue_type=silence.issue_type,
        recurrence_weekdays=tuple(silence.recurrence_weekdays or ()),
        recurrence_start=silence.recurrence_start,
        recurrence_end=silence.recurrence_end,
        time_zone=silence.time_zone,
    )


@transaction.atomic
def silence_expire(*, silence_id: int, actor: Any, now: datetime | None = None) -> Silence:
    """End a silence now (its rows stay: the audit trail keeps it)."""
    now = now or timezone.now()
    silence = Silence.objects.select_for_update().get(pk=silence_id)
    if silence.ends_at <= now:
        return silence
    # A silence that had not started yet ends just after its start (the end
    # stays after the start, a constraint): either way it holds nothing more.
    silence.ends_at = max(now, silence.starts_at + timedelta(microseconds=1))
    silence.updated_at = now
    silence.save(update_fields=["ends_at", "updated_at"])
    _event(silence=silence, action=SilenceAction.EXPIRED, actor=actor, now=now)
    return silence
