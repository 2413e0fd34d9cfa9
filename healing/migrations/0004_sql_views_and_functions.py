"""The seed's views and functions for psql users (PostgreSQL only; a no-op on SQLite).

The SQL is frozen here as it was when this migration was written: a migration
never imports live modules (``healing/sql_objects.py`` is the current text;
a later migration that changes an object carries its own frozen copy, and
``tests/healing/reports/test_sql_drift.py`` checks that the newest copy of
every object is the live one). The views read set-returning functions, so
they never block a later ALTER/DROP COLUMN.
"""

from django.db import migrations

STUCK_ORDERS_ROWS = r"""
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
    JOIN orders o
      ON o.status = r.status
     AND o.status IN ('PENDING', 'CONFIRMED', 'ACCEPTED', 'PROCESSING', 'SHIPPED')
     AND o.stuck_since < now() - make_interval(mins => r.threshold_minutes::integer)
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

STUCK_ORDERS_VIEW = r"""
CREATE OR REPLACE VIEW stuck_orders_view AS
SELECT * FROM healing_stuck_orders_rows();
"""

DETECT_STUCK_ORDERS = r"""
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

STATISTICS_ROWS = r"""
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
    -- Same definitions as healing.stats.statistics_daily: the UTC day of
    -- detection; recovery time = completed - detected of SUCCESS healings;
    -- recovery_status = the most common final status (ties: alphabetical).
    SELECT
        (a.issue_detected_at AT TIME ZONE 'UTC')::date,
        a.issue_type::text,
        a.recovery_action::text,
        COALESCE(
            mode() WITHIN GROUP (ORDER BY a.recovery_status::text) FILTER (
                WHERE a.recovery_status IN ('SUCCESS', 'FAILED', 'SKIPPED', 'MANUAL_REQUIRED')),
            mode() WITHIN GROUP (ORDER BY a.recovery_status::text)
        ),
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
    GROUP BY 1, 2, 3
$body$;
"""

STATISTICS_VIEW = r"""
CREATE OR REPLACE VIEW healing_statistics_view AS
SELECT * FROM healing_statistics_rows();
"""

AUTO_HEAL_ORDER = r"""
CREATE OR REPLACE FUNCTION auto_heal_order(
    p_order_id bigint, p_issue_type text, p_recovery_action text
) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $body$
DECLARE
    v_order record;
    v_issue_type text;
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
    SELECT r.issue_type INTO v_issue_type
      FROM healing_stuck_rules r WHERE r.status = v_order.status;
    IF v_issue_type IS NULL THEN
        RAISE EXCEPTION 'auto_heal_order: order % is %: nothing to heal',
            p_order_id, v_order.status USING ERRCODE = 'check_violation';
    END IF;
    IF p_issue_type IS DISTINCT FROM v_issue_type THEN
        RAISE EXCEPTION 'auto_heal_order: order % is %, so its issue type is %, not %',
            p_order_id, v_order.status, v_issue_type, p_issue_type
            USING ERRCODE = 'check_violation';
    END IF;
    IF p_recovery_action IS NULL OR p_recovery_action NOT IN
        ('REASSIGN_VENDOR', 'RETRY_WORKFLOW', 'CANCEL_ORDER', 'MANUAL_INTERVENTION') THEN
        RAISE EXCEPTION 'auto_heal_order: unknown recovery action %', p_recovery_action
            USING ERRCODE = 'check_violation';
    END IF;
    IF p_recovery_action = 'REASSIGN_VENDOR'
       AND v_order.status NOT IN ('PENDING', 'CONFIRMED', 'ACCEPTED') THEN
        RAISE EXCEPTION 'auto_heal_order: an order in % is never reassigned', v_order.status
            USING ERRCODE = 'check_violation';
    END IF;

    -- At most one active healing per order (invariant 2): return the active one.
    SELECT a.id INTO v_id FROM healing_actions a
     WHERE a.order_id = p_order_id AND a.recovery_status IN ('PENDING', 'IN_PROGRESS');
    IF FOUND THEN
        RETURN v_id;
    END IF;

    SELECT count(*) INTO v_attempts FROM healing_actions a
     WHERE a.order_id = p_order_id
       AND a.recovery_status IN ('SUCCESS', 'FAILED', 'MANUAL_REQUIRED')
       AND a.created_at > COALESCE(
           (SELECT max(x.resolved_at) FROM healing_actions x WHERE x.order_id = p_order_id),
           '-infinity'::timestamptz);

    INSERT INTO healing_actions (
        order_id, cycle_id, issue_type, "trigger", issue_detected_at, detected_status,
        episode_started_at, stuck_minutes, attempt_number, dry_run, recovery_action,
        recovery_status, skip_reason, recovery_attempted_at, completed_at,
        recovery_duration_seconds, resulting_status, previous_vendor_id, new_vendor_id,
        error_message, retry_count, admin_notified, claim_token, lease_expires_at,
        resolved_at, resolved_by_id, requested_by_id, created_at, updated_at
    ) VALUES (
        p_order_id, NULL, v_issue_type, 'SQL', v_now, v_order.status,
        v_order.stuck_since,
        GREATEST(floor(extract(epoch FROM (v_now - v_order.stuck_since)) / 60), 0)::integer,
        v_attempts + 1, false, p_recovery_action,
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

# Name -> CREATE statement, in creation order.
SQL_OBJECTS = {
    "healing_stuck_orders_rows": STUCK_ORDERS_ROWS,
    "stuck_orders_view": STUCK_ORDERS_VIEW,
    "detect_stuck_orders": DETECT_STUCK_ORDERS,
    "healing_statistics_rows": STATISTICS_ROWS,
    "healing_statistics_view": STATISTICS_VIEW,
    "auto_heal_order": AUTO_HEAL_ORDER,
}

DROP_STATEMENTS = (
    "DROP FUNCTION IF EXISTS auto_heal_order(bigint, text, text)",
    "DROP VIEW IF EXISTS healing_statistics_view",
    "DROP FUNCTION IF EXISTS healing_statistics_rows()",
    "DROP FUNCTION IF EXISTS detect_stuck_orders()",
    "DROP VIEW IF EXISTS stuck_orders_view",
    "DROP FUNCTION IF EXISTS healing_stuck_orders_rows()",
)


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for statement in (*DROP_STATEMENTS, *SQL_OBJECTS.values()):
            cursor.execute(statement)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for statement in DROP_STATEMENTS:
            cursor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("healing", "0003_beat_schedule")]

    operations = [migrations.RunPython(forward, backward)]
