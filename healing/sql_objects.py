"""The seed's PostgreSQL views and functions, for operators working in psql.

``stuck_orders_view``, ``healing_statistics_view``, ``detect_stuck_orders()``
and ``auto_heal_order(order_id, issue_type, recovery_action)``.

Kept from blocking later column changes: PostgreSQL refuses ``ALTER COLUMN
... TYPE`` or ``DROP COLUMN`` on a column a view reads. So each view is only
``SELECT * FROM <function>()``, and the functions' bodies are SQL strings,
which PostgreSQL does not track as dependencies. The row functions are
``LANGUAGE sql STABLE`` with a single SELECT, so the planner inlines them
into the caller's query: filters on the view still use the indexes.

The same rules as the Python side, so the two cannot drift:

- ``stuck_orders_view`` / ``detect_stuck_orders()`` are "stuck" as
  ``healing.detection`` defines it (thresholds and ladders read from
  ``healing_stuck_rules``; attempts since the last manual resolution; an
  expired lease re-dispatched, not re-created; manual hold excluded).
  ``tests/healing/reports/test_sql_drift.py`` runs both on the same orders
  under several rule sets and compares every row.
- ``healing_statistics_view`` is ``healing.reports.statistics.statistics_daily``
  (one row per day, issue type, action and status).
- ``auto_heal_order`` is ``healing.execution.healing_initiate`` with
  ``trigger=SQL``: the same checks in the same order, its status lists
  generated below from the Python constants (``ISSUE_TYPE_FOR_STATUS``,
  ``OPEN_STATUSES``, ``REASSIGNABLE_STATUSES``, ``WORKFLOW_STEP``). It also
  refuses an unknown action (the API's serializer does that before
  ``healing_initiate``). It never changes an order (invariant 1): it records a
  PENDING healing, with a claim token and an already-expired lease, that the
  next cycle dispatches like any healing whose task was lost (invariant 7).

Migrations never import this module: each one that (re)creates an object
holds a frozen copy of its SQL (``SQL_OBJECTS``), and a test checks that the
newest frozen copy of every object is the text here. Changing a statement
here therefore needs a new migration with the new text.
"""

from __future__ import annotations

from typing import Any

from healing.models import ACTIVE_STATUSES, ATTEMPT_STATUSES, ISSUE_TYPE_FOR_STATUS, RecoveryAction
from orders.gateway import WORKFLOW_STEP
from orders.models import OPEN_STATUSES, REASSIGNABLE_STATUSES


def _sql_list(values: Any) -> str:
    return ", ".join(f"'{value}'" for value in values)


def _issue_type_case(column: str) -> str:
    whens = " ".join(
        f"WHEN '{status}' THEN '{issue}'" for status, issue in ISSUE_TYPE_FOR_STATUS.items()
    )
    return f"CASE {column} {whens} END"


STUCK_ORDERS_ROWS = """
CREATE OR REPLACE FUNCTION healing_stuck_orders_rows()
RETURNS TABLE (
    order_id bigint,
    order_number text,
    status text,
    vendor_id bigint,
    issue_type text,
    stuck_since timestamptz,
    stuck_minutes integer,
    threshold_minutes integer,
    active_healing_count integer,
    expired_healing_id bigint,
    on_manual_hold boolean,
    total_healing_attempts integer,
    attempts integer,
    recommended_action text,
    dry_run boolean
)
LANGUAGE sql STABLE AS $body$
    -- Thresholds and ladders come from healing_stuck_rules (editable in the
    -- admin), never hard-coded. The status list lets the planner use the
    -- partial index orders_open_stuck_idx (status, stuck_since).
    SELECT
        o.id::bigint,
        o.number::text,
        o.status::text,
        o.vendor_id::bigint,
        r.issue_type::text,
        o.stuck_since,
        floor(extract(epoch FROM (now() - o.stuck_since)) / 60)::integer,
        r.threshold_minutes::integer,
        h.active_count::integer,
        h.expired_id::bigint,
        COALESCE(h.on_hold, false),
        h.total::integer,
        h.attempts::integer,
        COALESCE(r.ladder ->> h.attempts::integer, 'MANUAL_INTERVENTION')::text,
        r.dry_run
    FROM healing_stuck_rules r
    -- healing.detection's two range scans: orders on wall-clock time
    -- (no due time) past the threshold, and orders on vendor time (a
    -- vendor calendar) whose due time has passed (issue 18).
    CROSS JOIN LATERAL (
        SELECT w.* FROM orders w
         WHERE w.status = r.status
           AND w.status IN ('PENDING', 'CONFIRMED', 'ACCEPTED', 'PROCESSING', 'SHIPPED')
           AND w.due_at IS NULL
           AND w.stuck_since < now() - make_interval(mins => r.threshold_minutes::integer)
        UNION ALL
        SELECT v.* FROM orders v
         WHERE v.status = r.status
           AND v.status IN ('PENDING', 'CONFIRMED', 'ACCEPTED', 'PROCESSING', 'SHIPPED')
           AND v.due_at < now()
    ) o
    CROSS JOIN LATERAL (
        SELECT
            count(*) FILTER (WHERE a.recovery_status IN ('PENDING', 'IN_PROGRESS'))
                AS active_count,
            max(a.id) FILTER (
                WHERE a.recovery_status IN ('PENDING', 'IN_PROGRESS')
                  AND a.lease_expires_at < now()
            ) AS expired_id,
            bool_or(a.recovery_status = 'MANUAL_REQUIRED' AND a.resolved_at IS NULL)
                AS on_hold,
            count(*) AS total,
            -- DESIGN.md "Attempts": SUCCESS, FAILED, MANUAL_REQUIRED since the
            -- order's last manual resolution.
            count(*) FILTER (
                WHERE a.recovery_status IN ('SUCCESS', 'FAILED', 'MANUAL_REQUIRED')
                  AND a.created_at > COALESCE(
                      (SELECT max(x.resolved_at) FROM healing_actions x
                        WHERE x.order_id = o.id),
                      '-infinity'::timestamptz)
            ) AS attempts
        FROM healing_actions a
        WHERE a.order_id = o.id
    ) h
    WHERE r.enabled
$body$;
"""

STUCK_ORDERS_VIEW = """
CREATE OR REPLACE VIEW stuck_orders_view AS
SELECT * FROM healing_stuck_orders_rows();
"""

DETECT_STUCK_ORDERS = """
CREATE OR REPLACE FUNCTION detect_stuck_orders()
RETURNS TABLE (
    order_id bigint,
    order_number text,
    status text,
    issue_type text,
    stuck_minutes integer,
    attempts integer,
    recommended_action text,
    redispatch_healing_id bigint
)
LANGUAGE sql STABLE AS $body$
    -- What the next cycle will act on (healing.detection.stuck_orders_detect):
    -- stuck, not being healed (an expired lease is re-dispatched, its id
    -- given), not on manual hold.
    SELECT s.order_id, s.order_number, s.status, s.issue_type, s.stuck_minutes,
           s.attempts, s.recommended_action, s.expired_healing_id
      FROM healing_stuck_orders_rows() s
     WHERE NOT s.on_manual_hold
       AND (s.active_healing_count = 0 OR s.expired_healing_id IS NOT NULL)
     ORDER BY s.stuck_since, s.order_id
$body$;
"""

STATISTICS_ROWS = """
CREATE OR REPLACE FUNCTION healing_statistics_rows()
RETURNS TABLE (
    date date,
    issue_type text,
    recovery_action text,
    recovery_status text,
    total_cases integer,
    avg_recovery_time_minutes numeric,
    successful_recoveries integer,
    failed_recoveries integer,
    skipped_recoveries integer,
    manual_interventions integer,
    active integer,
    p50_recovery_time_minutes numeric,
    p95_recovery_time_minutes numeric,
    admin_notifications integer,
    success_rate numeric
)
LANGUAGE sql STABLE AS $body$
    -- Same definitions as healing.reports.statistics.statistics_daily: the
    -- UTC day of detection; recovery time = completed - detected of SUCCESS
    -- healings; one row per recovery status, so a row's status is the status
    -- of every healing it counts.
    SELECT
        (a.issue_detected_at AT TIME ZONE 'UTC')::date,
        a.issue_type::text,
        a.recovery_action::text,
        a.recovery_status::text,
        count(*)::integer,
        round((avg(extract(epoch FROM (a.completed_at - a.issue_detected_at)))
               FILTER (WHERE a.recovery_status = 'SUCCESS') / 60)::numeric, 2),
        count(*) FILTER (WHERE a.recovery_status = 'SUCCESS')::integer,
        count(*) FILTER (WHERE a.recovery_status = 'FAILED')::integer,
        count(*) FILTER (WHERE a.recovery_status = 'SKIPPED')::integer,
        count(*) FILTER (WHERE a.recovery_status = 'MANUAL_REQUIRED')::integer,
        count(*) FILTER (WHERE a.recovery_status IN ('PENDING', 'IN_PROGRESS'))::integer,
        round((percentile_cont(0.5) WITHIN GROUP (
                   ORDER BY extract(epoch FROM (a.completed_at - a.issue_detected_at)))
               FILTER (WHERE a.recovery_status = 'SUCCESS' AND a.completed_at IS NOT NULL)
               / 60)::numeric, 2),
        round((percentile_cont(0.95) WITHIN GROUP (
                   ORDER BY extract(epoch FROM (a.completed_at - a.issue_detected_at)))
               FILTER (WHERE a.recovery_status = 'SUCCESS' AND a.completed_at IS NOT NULL)
               / 60)::numeric, 2),
        count(*) FILTER (WHERE a.admin_notified)::integer,
        round(100.0 * count(*) FILTER (WHERE a.recovery_status = 'SUCCESS')
              / NULLIF(count(*) FILTER (
                  WHERE a.recovery_status IN ('SUCCESS', 'FAILED', 'MANUAL_REQUIRED')), 0), 2)
    FROM healing_actions a
    GROUP BY 1, 2, 3, 4
$body$;
"""

STATISTICS_VIEW = """
CREATE OR REPLACE VIEW healing_statistics_view AS
SELECT * FROM healing_statistics_rows();
"""

_AUTO_HEAL_ORDER_TEMPLATE = """
CREATE OR REPLACE FUNCTION auto_heal_order(
    p_order_id bigint, p_issue_type text, p_recovery_action text
) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $body$
-- healing_initiate(order, trigger=SQL, issue_type, recovery_action), step by step.
DECLARE
    v_order record;
    v_issue_type text;
    v_rule record;
    v_action text := p_recovery_action;
    v_attempts integer;
    v_id bigint;
    v_now timestamptz := now();
BEGIN
    SELECT o.id, o.status, o.stuck_since, o.vendor_id INTO v_order
      FROM orders o WHERE o.id = p_order_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'auto_heal_order: order % does not exist', p_order_id
            USING ERRCODE = 'no_data_found';
    END IF;

    -- At most one active healing per order (invariant 2): return the active one.
    SELECT a.id INTO v_id FROM healing_actions a
     WHERE a.order_id = p_order_id AND a.recovery_status IN (@ACTIVE_STATUSES@);
    IF FOUND THEN
        RETURN v_id;
    END IF;

    IF v_order.status NOT IN (@OPEN_STATUSES@) THEN
        RAISE EXCEPTION 'auto_heal_order: order % is %: nothing to heal',
            p_order_id, v_order.status USING ERRCODE = 'check_violation';
    END IF;
    v_issue_type := @ISSUE_TYPE_OF_STATUS@;
    IF p_issue_type IS NOT NULL AND p_issue_type IS DISTINCT FROM v_issue_type THEN
        RAISE EXCEPTION 'auto_heal_order: order % is %, so its issue type is %, not %',
            p_order_id, v_order.status, COALESCE(v_issue_type, 'none'), p_issue_type
            USING ERRCODE = 'check_violation';
    END IF;

    SELECT count(*) INTO v_attempts FROM healing_actions a
     WHERE a.order_id = p_order_id
       AND a.recovery_status IN (@ATTEMPT_STATUSES@)
       AND a.created_at > COALESCE(
           (SELECT max(x.resolved_at) FROM healing_actions x WHERE x.order_id = p_order_id),
           '-infinity'::timestamptz);

    IF v_action IS NULL THEN
        -- No action named: the order must be past its rule's threshold, and
        -- the rule's ladder picks the step.
        SELECT r.threshold_minutes, r.ladder INTO v_rule
          FROM healing_stuck_rules r WHERE r.status = v_order.status;
        IF NOT FOUND OR v_issue_type IS NULL THEN
            RAISE EXCEPTION 'auto_heal_order: order % is %: no stuck rule applies',
                p_order_id, v_order.status USING ERRCODE = 'check_violation';
        END IF;
        IF v_now - v_order.stuck_since < make_interval(mins => v_rule.threshold_minutes) THEN
            RAISE EXCEPTION 'auto_heal_order: order % is under its % min threshold',
                p_order_id, v_rule.threshold_minutes USING ERRCODE = 'check_violation';
        END IF;
        v_action := COALESCE(v_rule.ladder ->> v_attempts, '@MANUAL_INTERVENTION@');
    END IF;
    IF v_action NOT IN (@RECOVERY_ACTIONS@) THEN
        RAISE EXCEPTION 'auto_heal_order: unknown recovery action %', v_action
            USING ERRCODE = 'check_violation';
    END IF;
    IF v_action = '@REASSIGN_VENDOR@' AND v_order.status NOT IN (@REASSIGNABLE_STATUSES@) THEN
        RAISE EXCEPTION 'auto_heal_order: an order in % is never reassigned', v_order.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF v_action = '@RETRY_WORKFLOW@' AND v_order.status NOT IN (@WORKFLOW_STATUSES@) THEN
        RAISE EXCEPTION 'auto_heal_order: an order in % has no workflow step', v_order.status
            USING ERRCODE = 'check_violation';
    END IF;

    INSERT INTO healing_actions (
        order_id, cycle_id, issue_type, "trigger", issue_detected_at, detected_status,
        episode_started_at, stuck_minutes, attempt_number, dry_run, recovery_action,
        recovery_status, skip_reason, recovery_attempted_at, completed_at,
        recovery_duration_seconds, resulting_status, previous_vendor_id, new_vendor_id,
        error_message, retry_count, admin_notified, claim_token, lease_expires_at,
        resolved_at, resolved_by_id, requested_by_id, created_at, updated_at
    ) VALUES (
        p_order_id, NULL, COALESCE(v_issue_type, ''), 'SQL', v_now, v_order.status,
        v_order.stuck_since,
        GREATEST(floor(extract(epoch FROM (v_now - v_order.stuck_since)) / 60), 0)::integer,
        v_attempts + 1, false, v_action,
        'PENDING', '', NULL, NULL,
        NULL, '', v_order.vendor_id, NULL,
        '', 0, false, gen_random_uuid(),
        -- Already expired: the next cycle re-dispatches it with a new token.
        v_now - interval '1 second',
        NULL, NULL, NULL, v_now, v_now
    )
    ON CONFLICT (order_id) WHERE recovery_status IN ('PENDING', 'IN_PROGRESS') DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        -- A cycle or an operator started one between our check and our insert.
        SELECT a.id INTO v_id FROM healing_actions a
         WHERE a.order_id = p_order_id AND a.recovery_status IN ('PENDING', 'IN_PROGRESS');
    END IF;
    RETURN v_id;
END;
$body$;
"""

# The status and action lists of the Python checks, substituted into the body.
_AUTO_HEAL_ORDER_VALUES: dict[str, str] = {
    "@ACTIVE_STATUSES@": _sql_list(ACTIVE_STATUSES),
    "@OPEN_STATUSES@": _sql_list(OPEN_STATUSES),
    "@ISSUE_TYPE_OF_STATUS@": _issue_type_case("v_order.status"),
    "@ATTEMPT_STATUSES@": _sql_list(ATTEMPT_STATUSES),
    "@MANUAL_INTERVENTION@": RecoveryAction.MANUAL_INTERVENTION.value,
    "@RECOVERY_ACTIONS@": _sql_list(RecoveryAction.values),
    "@REASSIGN_VENDOR@": RecoveryAction.REASSIGN_VENDOR.value,
    "@REASSIGNABLE_STATUSES@": _sql_list(REASSIGNABLE_STATUSES),
    "@RETRY_WORKFLOW@": RecoveryAction.RETRY_WORKFLOW.value,
    "@WORKFLOW_STATUSES@": _sql_list(WORKFLOW_STEP),
}
AUTO_HEAL_ORDER = _AUTO_HEAL_ORDER_TEMPLATE
for _placeholder, _value in _AUTO_HEAL_ORDER_VALUES.items():
    AUTO_HEAL_ORDER = AUTO_HEAL_ORDER.replace(_placeholder, _value)

# Name -> CREATE statement, in creation order (a view after its function).
SQL_OBJECTS: dict[str, str] = {
    "healing_stuck_orders_rows": STUCK_ORDERS_ROWS,
    "stuck_orders_view": STUCK_ORDERS_VIEW,
    "detect_stuck_orders": DETECT_STUCK_ORDERS,
    "healing_statistics_rows": STATISTICS_ROWS,
    "healing_statistics_view": STATISTICS_VIEW,
    "auto_heal_order": AUTO_HEAL_ORDER,
}
CREATE_STATEMENTS: tuple[str, ...] = tuple(SQL_OBJECTS.values())

DROP_STATEMENTS: tuple[str, ...] = (
    "DROP FUNCTION IF EXISTS auto_heal_order(bigint, text, text)",
    "DROP VIEW IF EXISTS healing_statistics_view",
    "DROP FUNCTION IF EXISTS healing_statistics_rows()",
    "DROP FUNCTION IF EXISTS detect_stuck_orders()",
    "DROP VIEW IF EXISTS stuck_orders_view",
    "DROP FUNCTION IF EXISTS healing_stuck_orders_rows()",
)


def sql_objects_create(connection: Any) -> None:
    """Drop and recreate, so a changed column list in a function's result
    (which ``CREATE OR REPLACE`` refuses) also goes through."""
    with connection.cursor() as cursor:
        for statement in (*DROP_STATEMENTS, *CREATE_STATEMENTS):
            cursor.execute(statement)


def sql_objects_drop(connection: Any) -> None:
    with connection.cursor() as cursor:
        for statement in DROP_STATEMENTS:
            cursor.execute(statement)


def sql_objects_forward(apps: Any, schema_editor: Any) -> None:
    """Migration step: (re)create the objects on PostgreSQL; nothing on SQLite."""
    if schema_editor.connection.vendor == "postgresql":
        sql_objects_create(schema_editor.connection)


def sql_objects_backward(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        sql_objects_drop(schema_editor.connection)
