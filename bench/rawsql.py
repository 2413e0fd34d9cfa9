"""The healing transaction in raw SQL over psycopg: the floor the ORM path is measured against.

The same statements ``healing_execute`` issues for the first attempt on a
stuck order (load with the candidate vendor, claim, then one transaction that
compare-and-sets the order, moves the vendor load, upserts assignments, writes
the history and message rows and finishes the healing), without Django,
Celery, logging or model instances. Only REASSIGN_VENDOR and RETRY_WORKFLOW
are written out: they are the only first-attempt actions of the default
ladders.

What counts as still stuck is not redefined here: a healing is acted on while
it is active (``healing.models.ACTIVE_STATUSES``) and its order is still in
the episode it was detected in (``healing.actions.base.still_in_episode``'s
rule, applied to the loaded columns); which orders are stuck at all is
``healing.detection``'s business (the benchmark's healings come from a cycle).
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import psycopg.errors

from healing.models import ACTIVE_STATUSES, RecoveryAction
from orders.gateway import WORKFLOW_STEP

_WRITTEN_OUT = (RecoveryAction.REASSIGN_VENDOR, RecoveryAction.RETRY_WORKFLOW)

LOAD = """
SELECT h.id, h.claim_token, h.recovery_status, h.recovery_action, h.detected_status,
       h.episode_started_at, h.issue_detected_at, h.issue_type, h.order_id,
       o.number, o.status, o.stuck_since, o.vendor_id, COALESCE(v.webhook_url, ''),
       c.id, c.webhook_url
FROM healing_actions h
JOIN orders o ON o.id = h.order_id
LEFT JOIN vendors v ON v.id = o.vendor_id
LEFT JOIN LATERAL (
    SELECT cv.id, cv.webhook_url FROM vendors cv
    WHERE h.recovery_action = 'REASSIGN_VENDOR' AND cv.is_active
      AND cv.open_orders < cv.capacity
      AND NOT EXISTS (SELECT 1 FROM vendor_assignments a
                      WHERE a.order_id = h.order_id AND a.vendor_id = cv.id)
    ORDER BY cv.acceptance_rate DESC, cv.open_orders, cv.id LIMIT 1
) c ON true
WHERE h.id = %s
"""
CLAIM = """
UPDATE healing_actions SET recovery_status = 'IN_PROGRESS', claim_token = %s,
    lease_expires_at = %s, recovery_attempted_at = COALESCE(recovery_attempted_at, %s),
    retry_count = 0, updated_at = %s
WHERE id = %s AND claim_token = %s AND recovery_status IN ('PENDING', 'IN_PROGRESS')
"""
ORDER_CAS_REASSIGN = """
UPDATE orders SET stuck_since = %s, updated_at = %s, status = 'PENDING',
    status_changed_at = %s, vendor_id = %s
WHERE id = %s AND status = %s AND stuck_since = %s
"""
ORDER_CAS_CLOCK = """
UPDATE orders SET stuck_since = %s, updated_at = %s WHERE id = %s AND status = %s
    AND stuck_since = %s
"""
VENDOR_MOVE = """
UPDATE vendors SET open_orders = open_orders + CASE WHEN id = %s THEN 1 ELSE -1 END
WHERE id IN (SELECT id FROM vendors WHERE id = ANY(%s) ORDER BY id FOR UPDATE)
  AND (id = %s OR (id = %s AND is_active AND open_orders < capacity
    AND NOT EXISTS (SELECT 1 FROM vendor_assignments a
                    WHERE a.order_id = %s AND a.vendor_id = vendors.id)))
"""
ASSIGN = """
INSERT INTO vendor_assignments (order_id, vendor_id, assigned_at, ended_at, outcome)
VALUES {values}
ON CONFLICT (order_id, vendor_id) DO UPDATE SET ended_at = EXCLUDED.ended_at,
    outcome = EXCLUDED.outcome
"""
HISTORY = """
INSERT INTO order_status_changes (order_id, from_status, to_status, from_vendor_id,
    to_vendor_id, actor_type, actor_user_id, reason, created_at)
VALUES (%s, %s, %s, %s, %s, 'HEALING', NULL, %s, %s)
"""
MESSAGE = """
INSERT INTO vendor_messages (order_id, vendor_id, kind, status, backend, error, latency_ms,
    healing_id, created_at)
VALUES (%s, %s, %s, 'SENT', 'simulated', '', 0, %s, %s)
"""
FINISH = """
UPDATE healing_actions SET recovery_status = 'SUCCESS',
    recovery_attempted_at = COALESCE(recovery_attempted_at, %s), retry_count = 0,
    skip_reason = '', error_message = '', completed_at = %s,
    recovery_duration_seconds = %s, resulting_status = %s, new_vendor_id = %s,
    lease_expires_at = NULL, admin_notified = false, updated_at = %s
WHERE id = %s AND claim_token = %s AND recovery_status = 'IN_PROGRESS'
"""


def _still_in_episode(
    *, order_status: str, stuck_since: datetime, detected: str, episode: datetime
) -> bool:
    """``still_in_episode`` on raw columns: same status and stuck clock as detected."""
    return order_status == detected and stuck_since == episode


def heal_one(conn: psycopg.Connection, healing_id: int, *, lease_seconds: int) -> str:
    """One healing, raw. Returns the outcome (SUCCESS, or STALE / SKIPPED)."""
    row = conn.execute(LOAD, [healing_id]).fetchone()
    if row is None:
        return "STALE"
    (
        _,
        token,
        status,
        action,
        detected,
        episode,
        detected_at,
        issue_type,
        order_id,
        _number,
        order_status,
        stuck_since,
        vendor_id,
        _webhook,
        candidate_id,
        _candidate_webhook,
    ) = row
    if status not in ACTIVE_STATUSES or not _still_in_episode(
        order_status=order_status, stuck_since=stuck_since, detected=detected, episode=episode
    ):
        return "SKIPPED"
    if action not in _WRITTEN_OUT:
        return "SKIPPED"
    if (action == "REASSIGN_VENDOR" and candidate_id is None) or (
        action == "RETRY_WORKFLOW" and vendor_id is None
    ):
        return "SKIPPED"
    now = datetime.now(UTC)
    new_token = uuid.uuid4()
    claimed = conn.execute(
        CLAIM, [new_token, now + timedelta(seconds=lease_seconds), now, now, healing_id, token]
    ).rowcount
    if not claimed:
        return "STALE"
    # (the vendor gateway would be called here, outside the transaction)
    duration = max((now - detected_at).total_seconds(), 0.0)
    with conn.transaction():
        if action == "REASSIGN_VENDOR":
            conn.execute(
                ORDER_CAS_REASSIGN, [now, now, now, candidate_id, order_id, detected, episode]
            )
            ids = [candidate_id] if vendor_id is None else [vendor_id, candidate_id]
            conn.execute(VENDOR_MOVE, [candidate_id, ids, vendor_id, candidate_id, order_id])
            values: list[tuple[Any, Any, datetime, datetime | None, str]] = [
                (order_id, candidate_id, now, None, "ACTIVE")
            ]
            if vendor_id is not None:
                values.append((order_id, vendor_id, now, now, "REASSIGNED"))
            placeholders = ", ".join(["(%s, %s, %s, %s, %s)"] * len(values))
            conn.execute(ASSIGN.format(values=placeholders), [v for value in values for v in value])
            conn.execute(
                HISTORY,
                [
                    order_id,
                    detected,
                    "PENDING",
                    vendor_id,
                    candidate_id,
                    f"self-healing {issue_type}: vendor did not progress the order",
                    now,
                ],
            )
            conn.execute(MESSAGE, [order_id, candidate_id, "OFFER", healing_id, now])
            resulting, new_vendor = "PENDING", candidate_id
        else:
            conn.execute(ORDER_CAS_CLOCK, [now, now, order_id, detected, episode])
            kind = WORKFLOW_STEP[detected]
            conn.execute(
                HISTORY,
                [
                    order_id,
                    detected,
                    detected,
                    vendor_id,
                    vendor_id,
                    f"self-healing {issue_type}: re-sent {kind}",
                    now,
                ],
            )
            conn.execute(MESSAGE, [order_id, vendor_id, kind, healing_id, now])
            resulting, new_vendor = detected, None
        conn.execute(
            FINISH,
            [now, now, duration, resulting, new_vendor, now, healing_id, new_token],
        )
    return "SUCCESS"


def raw_heal_all(
    *,
    conninfo: dict[str, Any],
    healing_ids: list[int],
    connections: int,
    lease_seconds: int,
    progress: Any = None,
) -> tuple[float, dict[str, int]]:
    """Heal every id over ``connections`` threads, one connection each; (seconds, outcomes)."""
    work: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    for healing_id in healing_ids:
        work.put(healing_id)
    for _ in range(connections):
        work.put(None)
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []
    conns = [psycopg.connect(autocommit=True, **conninfo) for _ in range(connections)]

    def run(conn: psycopg.Connection) -> None:
        try:
            while (healing_id := work.get()) is not None:
                # A deadlock or serialization failure is retried at once, as
                # the Celery task retries a transient database error.
                for attempt in range(5):
                    try:
                        outcome = heal_one(conn, healing_id, lease_seconds=lease_seconds)
                        break
                    except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                        if attempt == 4:
                            raise
                with lock:
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1
                if progress is not None:
                    progress.update(1)
        except BaseException as exc:  # surfaced after join
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(conn,)) for conn in conns]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    for conn in conns:
        conn.close()
    if errors:
        raise errors[0]
    return elapsed, outcomes
