"""What-if replay of the stuck rules over the orders' status history (issue 19).

Each ``OrderStatusChange`` row restarts the order's stuck clock (docs/DECISIONS.md
"Order state machine"), so the history is a list of episodes: (order, status,
start, end). An episode is flagged by a rule when the order was still in the
status when the threshold passed — detection's wall-clock test
(``stuck_since < now - threshold``) asked at every instant. An episode the
healer ended (the next row's actor is HEALING) says nothing about what the
order would have done on its own: it counts as still stuck until the end of
the window. An episode a vendor or the system ended before a rule's threshold
recovered by itself.

One pass over the window's history, ordered by order and time, replays today's
rules and the proposed ones side by side; the action comes from the rule's own
ladder (``StuckRule.action_for_attempt``), attempts counted per order within
the window. Vendor calendars (``due_at``) are not replayed: wall-clock minutes.
Nothing is written.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from healing.detection import rules_enabled
from healing.models import RecoveryAction, StuckRule
from orders.models import ActorType, OrderStatusChange

HISTORY_CHUNK = 20_000
Row = tuple[int, str, str, datetime]  # order_id, to_status, actor_type, created_at


class WhatIfInvalid(ValueError):
    """A proposed change that no rule can take (one line for the operator)."""


@dataclass(frozen=True, slots=True)
class Episode:
    order_id: int
    status: str
    started_at: datetime
    # When the order left the status; None while it is still in it.
    ended_at: datetime | None
    ended_by_healer: bool


@dataclass
class Side:
    """What one set of rules would have done over the window."""

    rules: dict[str, StuckRule]
    flagged_orders: set[int] = field(default_factory=set)
    flagged_episodes: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    escalations: int = 0
    self_recovered: int = 0
    _attempts: int = 0

    def flag_at(self, episode: Episode, *, end: datetime) -> datetime | None:
        """When this side's rule flags the episode; None when unruled or not stuck long enough."""
        rule = self.rules.get(episode.status)
        if rule is None:
            return None
        due = episode.started_at + timedelta(minutes=rule.threshold_minutes)
        stuck_until = (
            end if episode.ended_at is None or episode.ended_by_healer else episode.ended_at
        )
        if due < stuck_until:
            return due
        if episode.ended_at is not None and not episode.ended_by_healer:
            self.self_recovered += 1
        return None

    def record(self, episode: Episode) -> None:
        action = self.rules[episode.status].action_for_attempt(self._attempts)
        self._attempts += 1
        self.flagged_orders.add(episode.order_id)
        self.flagged_episodes += 1
        self.actions[action] += 1
        if action == RecoveryAction.MANUAL_INTERVENTION:
            self.escalations += 1

    def order_started(self) -> None:
        self._attempts = 0

    def summary(self) -> dict[str, Any]:
        return {
            "rules": {
                status: {"threshold_minutes": rule.threshold_minutes, "ladder": list(rule.ladder)}
                for status, rule in sorted(self.rules.items())
            },
            "flagged_orders": len(self.flagged_orders),
            "flagged_episodes": self.flagged_episodes,
            "actions": {action: self.actions.get(action, 0) for action in RecoveryAction.values},
            "escalations": self.escalations,
            "self_recovered_before_threshold": self.self_recovered,
        }


def episodes_from_rows(rows: Iterable[Row]) -> Iterator[Episode]:
    """Pair each history row with the next row of the same order (rows sorted by order, time)."""
    previous: Row | None = None
    for row in rows:
        if previous is not None:
            same_order = previous[0] == row[0]
            yield Episode(
                order_id=previous[0],
                status=previous[1],
                started_at=previous[3],
                ended_at=row[3] if same_order else None,
                ended_by_healer=same_order and row[2] == ActorType.HEALING,
            )
        previous = row
    if previous is not None:
        yield Episode(previous[0], previous[1], previous[3], None, False)


def _percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def whatif_replay(
    *,
    rows: Iterable[Row],
    current: dict[str, StuckRule],
    proposed: dict[str, StuckRule],
    end: datetime,
) -> dict[str, Any]:
    """Replay both rule sets over ``rows`` in one pass; the report's comparison block."""
    now_side, new_side = Side(rules=current), Side(rules=proposed)
    shifts: list[float] = []
    only_current = only_proposed = too_early = 0
    last_order: int | None = None
    for episode in episodes_from_rows(rows):
        if episode.order_id != last_order:
            last_order = episode.order_id
            now_side.order_started()
            new_side.order_started()
        at_now = now_side.flag_at(episode, end=end)
        at_new = new_side.flag_at(episode, end=end)
        if at_now is not None:
            now_side.record(episode)
        if at_new is not None:
            new_side.record(episode)
        if at_now is not None and at_new is not None:
            shifts.append((at_new - at_now).total_seconds() / 60)
        elif at_now is not None or at_new is not None:
            only_current += at_now is not None
            only_proposed += at_new is not None
            # One side acts on an order the other side leaves to recover by itself.
            too_early += episode.ended_at is not None and not episode.ended_by_healer
    return {
        "current": now_side.summary(),
        "proposed": new_side.summary(),
        "comparison": {
            "flagged_by_both": len(shifts),
            "only_current": only_current,
            "only_proposed": only_proposed,
            "earlier": sum(1 for s in shifts if s < 0),
            "later": sum(1 for s in shifts if s > 0),
            "shift_minutes_mean": round(sum(shifts) / len(shifts), 2) if shifts else None,
            "shift_minutes_p95": _percentile(shifts, 0.95),
            "self_recovered_between_thresholds": too_early,
        },
    }


def rules_propose(
    *, rules: list[StuckRule], thresholds: dict[str, int], ladders: dict[str, list[str]]
) -> dict[str, StuckRule]:
    """Unsaved copies of ``rules`` with the proposed thresholds and ladders, validated."""
    by_status = {rule.status: rule for rule in rules}
    for status in [*thresholds, *ladders]:
        if status not in by_status:
            raise WhatIfInvalid(
                f"no enabled rule for {status}; rules exist for {', '.join(sorted(by_status))}"
            )
    proposed: dict[str, StuckRule] = {}
    for status, rule in by_status.items():
        copy = StuckRule(
            status=rule.status,
            issue_type=rule.issue_type,
            threshold_minutes=thresholds.get(status, rule.threshold_minutes),
            ladder=ladders.get(status, list(rule.ladder)),
            enabled=True,
            dry_run=rule.dry_run,
        )
        if copy.threshold_minutes < 1:
            raise WhatIfInvalid(f"{status}: the threshold must be at least 1 minute")
        try:
            copy.clean()
        except Exception as exc:  # ValidationError: its messages, one line
            messages = getattr(exc, "messages", [str(exc)])
            raise WhatIfInvalid(f"{status}: {' '.join(messages)}") from None
        proposed[status] = copy
    return proposed


def history_rows(*, start: datetime, end: datetime) -> Iterator[Row]:
    """The window's history in one ordered, streamed query (no query per order)."""
    return (
        OrderStatusChange.objects.filter(created_at__gte=start, created_at__lt=end)
        .order_by("order_id", "created_at", "id")
        .values_list("order_id", "to_status", "actor_type", "created_at")
        .iterator(chunk_size=HISTORY_CHUNK)
    )


def rules_whatif(
    *,
    days: int,
    thresholds: dict[str, int] | None = None,
    ladders: dict[str, list[str]] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Today's enabled rules against the proposed changes over the last ``days`` days."""
    end = now or timezone.now()
    start = end - timedelta(days=days)
    rules = rules_enabled()
    proposed = rules_propose(rules=rules, thresholds=thresholds or {}, ladders=ladders or {})
    counted = _Counted(history_rows(start=start, end=end))
    report = whatif_replay(
        rows=counted, current={rule.status: rule for rule in rules}, proposed=proposed, end=end
    )
    return {
        "window": {"from": start.isoformat(), "to": end.isoformat(), "days": days},
        "history_rows": counted.count,
        **report,
    }


class _Counted:
    """An iterable that counts what passed through it."""

    def __init__(self, rows: Iterable[Row]):
        self.rows = rows
        self.count = 0

    def __iter__(self) -> Iterator[Row]:
        for row in self.rows:
            self.count += 1
            yield row
