"""Bulk redrive with a preview (issue 19): re-heal the orders a filter selects.

A dry run answers the count, a sample and a signed confirmation token bound to
the filter (its hash) and to a few minutes; executing with that token starts
one healing per matching order that is still open, trigger REDRIVE, the
operator recorded, through the normal pipeline (``healing_initiate`` now,
``healings_dispatch`` once the transaction commits).

An order matches when the filter's healing is still its last word: no healing
came after it, so none is active, and the order is still in a status a rule
covers. The action is the failed healing's own, or for a manual hold (whose
ladder is spent) the ladder's first step, the hold being handed back first.

A token is used once: its hash goes into ``healing_redrive_executions`` (a
unique column) in the transaction that starts the healings, so a second or
concurrent execution with it waits on the index, then is refused.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from healing.dispatch import healings_dispatch
from healing.errors import ActionNotApplicable, NotStuck
from healing.execution import action_check, healing_initiate, manual_intervention_resolve
from healing.models import (
    ISSUE_TYPE_FOR_STATUS,
    HealingAction,
    RecoveryAction,
    RecoveryStatus,
    StuckRule,
    Trigger,
)
from healing.redrive_models import RedriveExecution
from orders.errors import DomainError

REDRIVABLE = (RecoveryStatus.FAILED, RecoveryStatus.MANUAL_REQUIRED)
SAMPLE_SIZE = 10
_SALT = "healing.redrive"


class RedriveTokenInvalid(DomainError):
    code = "redrive_token_invalid"
    http_status = 409


@dataclass(frozen=True)
class RedriveFilter:
    recovery_status: str
    vendor_id: int | None = None
    issue_type: str | None = None
    detected_from: datetime | None = None
    detected_to: datetime | None = None

    def digest(self) -> str:
        canonical = json.dumps(
            {
                "recovery_status": self.recovery_status,
                "vendor_id": self.vendor_id,
                "issue_type": self.issue_type,
                "detected_from": self.detected_from.isoformat() if self.detected_from else None,
                "detected_to": self.detected_to.isoformat() if self.detected_to else None,
            },
            sort_keys=True,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class RedrivePreview:
    count: int
    sample: list[HealingAction]
    token: str
    expires_in_seconds: int


def _max_age() -> int:
    return int(getattr(settings, "HEALING_REDRIVE_TOKEN_SECONDS", 300))


def redrive_candidates(*, spec: RedriveFilter) -> QuerySet[HealingAction]:
    """The filter's healings that are their order's last, on orders a rule still covers."""
    if spec.recovery_status not in REDRIVABLE:
        raise ActionNotApplicable(
            f"only {' or '.join(REDRIVABLE)} healings can be redriven", field="recoveryStatus"
        )
    later = HealingAction.objects.filter(
        order_id=OuterRef("order_id"), created_at__gt=OuterRef("created_at")
    )
    rows = HealingAction.objects.filter(
        recovery_status=spec.recovery_status,
        order__status__in=list(ISSUE_TYPE_FOR_STATUS),
    ).filter(~Exists(later))
    if spec.recovery_status == RecoveryStatus.MANUAL_REQUIRED:
        rows = rows.filter(resolved_at__isnull=True)
    if spec.vendor_id is not None:
        rows = rows.filter(previous_vendor_id=spec.vendor_id)
    if spec.issue_type:
        rows = rows.filter(issue_type=spec.issue_type)
    if spec.detected_from:
        rows = rows.filter(issue_detected_at__gte=spec.detected_from)
    if spec.detected_to:
        rows = rows.filter(issue_detected_at__lt=spec.detected_to)
    return rows.select_related("order").order_by("order_id", "-created_at")


def _redrive_action(healing: HealingAction, rules: dict[str, StuckRule]) -> str | None:
    """The action a redrive runs for ``healing``'s order, or None when none applies."""
    order = healing.order
    action = healing.recovery_action
    if action == RecoveryAction.MANUAL_INTERVENTION:
        rule = rules.get(order.status)
        if rule is None:
            return None
        action = rule.action_for_attempt(0)
    try:
        action_check(status=order.status, action=action)
    except (ActionNotApplicable, NotStuck):
        return None
    return action


def _plan(
    *, spec: RedriveFilter | None = None, healing_ids: list[int] | None = None
) -> list[tuple[HealingAction, str]]:
    rules = {rule.status: rule for rule in StuckRule.objects.filter(enabled=True)}
    plan: list[tuple[HealingAction, str]] = []
    if spec is not None:
        candidates = redrive_candidates(spec=spec)
    else:
        later = HealingAction.objects.filter(
            order_id=OuterRef("order_id"), created_at__gt=OuterRef("created_at")
        )
        candidates = (
            HealingAction.objects.filter(
                pk__in=healing_ids or [],
                recovery_status__in=REDRIVABLE,
                order__status__in=list(ISSUE_TYPE_FOR_STATUS),
            )
            .exclude(recovery_status=RecoveryStatus.MANUAL_REQUIRED, resolved_at__isnull=False)
            .filter(~Exists(later))
            .select_related("order")
            .order_by("order_id", "-created_at")
        )
    for healing in candidates:
        action = _redrive_action(healing, rules)
        if action is not None:
            plan.append((healing, action))
    return plan


def redrive_preview(*, spec: RedriveFilter) -> RedrivePreview:
    """The dry run: what an execution would start now, and the token to confirm it."""
    plan = _plan(spec=spec)
    token = signing.dumps({"f": spec.digest(), "n": secrets.token_hex(8)}, salt=_SALT)
    return RedrivePreview(
        count=len(plan),
        sample=[healing for healing, _ in plan[:SAMPLE_SIZE]],
        token=token,
        expires_in_seconds=_max_age(),
    )


def _token_check(*, spec: RedriveFilter, token: str) -> str:
    try:
        payload = signing.loads(token, salt=_SALT, max_age=_max_age())
    except signing.SignatureExpired:
        raise RedriveTokenInvalid(
            "the confirmation token expired: run the dry run again", field="token"
        ) from None
    except signing.BadSignature:
        raise RedriveTokenInvalid("the confirmation token is not valid", field="token") from None
    if not isinstance(payload, dict) or payload.get("f") != spec.digest():
        raise RedriveTokenInvalid(
            "the confirmation token was issued for a different filter", field="token"
        )
    return hashlib.sha256(token.encode()).hexdigest()


def redrive_execute(*, spec: RedriveFilter, token: str, user: Any) -> list[int]:
    """Start one REDRIVE healing per matching open order; the new healings' ids."""
    token_hash = _token_check(spec=spec, token=token)
    now = timezone.now()
    try:
        with transaction.atomic():
            execution = RedriveExecution.objects.create(
                token_hash=token_hash, filter_hash=spec.digest(), requested_by=user, executed_at=now
            )
            started = _start(plan=_plan(spec=spec), user=user, now=now)
            RedriveExecution.objects.filter(pk=execution.pk).update(healings_started=len(started))
    except IntegrityError:
        if RedriveExecution.objects.filter(token_hash=token_hash).exists():
            raise RedriveTokenInvalid(
                "the confirmation token was already used", field="token"
            ) from None
        raise
    return started


def _start(*, plan: list[tuple[HealingAction, str]], user: Any, now: datetime) -> list[int]:
    """Inside the caller's transaction: the healings, and their dispatch on commit."""
    started: list[HealingAction] = []
    for healing, action in plan:
        if healing.recovery_status == RecoveryStatus.MANUAL_REQUIRED:
            manual_intervention_resolve(order_id=healing.order_id, user=user, now=now)
        new = healing_initiate(
            order=healing.order,
            trigger=Trigger.REDRIVE,
            recovery_action=action,
            requested_by=user,
            now=now,
        )
        if new.trigger == Trigger.REDRIVE and new.created_at == now:
            started.append(new)
    pairs = [(h.pk, str(h.claim_token)) for h in started]
    numbers = {h.pk: h.order.number for h in started}
    transaction.on_commit(lambda: healings_dispatch(pairs, order_numbers=numbers))
    return [h.pk for h in started]


def redrive_selection(*, healing_ids: list[int], user: Any) -> list[int]:
    """The admin's redrive of selected healings: the admin's confirmation is the preview."""
    with transaction.atomic():
        return _start(plan=_plan(healing_ids=healing_ids), user=user, now=timezone.now())
