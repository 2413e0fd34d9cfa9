"""Reports: healing_statistics_view has one row per recovery status (issue 20
item 5), and auto_heal_order() runs healing_initiate's checks in its order
(an active healing first, then open status, issue type, the rule's ladder when
no action is named, the action's status lists). PostgreSQL only.

Frozen SQL (a migration never imports live modules); the previous text of
both objects is 0004's, restored on the way back.
"""

import importlib

from django.db import migrations

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

STATISTICS_VIEW = r"""
CREATE OR REPLACE VIEW healing_statistics_view AS
SELECT * FROM healing_statistics_rows();
"""

AUTO_HEAL_ORDER = r"""
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
     WHERE a.order_id = p_order_id AND a.recovery_status IN ('PENDING', 'IN_PROGRESS');
    IF FOUND THEN
        RETURN v_id;
    END IF;

    IF v_order.status NOT IN ('PENDING', 'CONFIRMED', 'ACCEPTED', 'PROCESSING', 'SHIPPED') THEN
        RAISE EXCEPTION 'auto_heal_order: order % is %: nothing to heal',
            p_order_id, v_order.status USING ERRCODE = 'check_violation';
    END IF;
    v_issue_type := CASE v_order.status WHEN 'PENDING' THEN 'STUCK_PENDING' WHEN 'CONFIRMED' THEN 'STUCK_CONFIRMED' WHEN 'ACCEPTED' THEN 'STUCK_ACCEPTED' WHEN 'PROCESSING' THEN 'STUCK_PROCESSING' END;
    IF p_issue_type IS NOT NULL AND p_issue_type IS DISTINCT FROM v_issue_type THEN
        RAISE EXCEPTION 'auto_heal_order: order % is %, so its issue type is %, not %',
            p_order_id, v_order.status, COALESCE(v_issue_type, 'none'), p_issue_type
            USING ERRCODE = 'check_violation';
    END IF;

    SELECT count(*) INTO v_attempts FROM healing_actions a
     WHERE a.order_id = p_order_id
       AND a.recovery_status IN ('SUCCESS', 'FAILED', 'MANUAL_REQUIRED')
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
        v_action := COALESCE(v_rule.ladder ->> v_attempts, 'MANUAL_INTERVENTION');
    END IF;
    IF v_action NOT IN ('REASSIGN_VENDOR', 'RETRY_WORKFLOW', 'CANCEL_ORDER', 'MANUAL_INTERVENTION') THEN
        RAISE EXCEPTION 'auto_heal_order: unknown recovery action %', v_action
            USING ERRCODE = 'check_violation';
    END IF;
    IF v_action = 'REASSIGN_VENDOR' AND v_order.status NOT IN ('PENDING', 'CONFIRMED', 'ACCEPTED') THEN
        RAISE EXCEPTION 'auto_heal_order: an order in % is never reassigned', v_order.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF v_action = 'RETRY_WORKFLOW' AND v_order.status NOT IN ('PENDING', 'CONFIRMED', 'ACCEPTED', 'PROCESSING', 'SHIPPED') THEN
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

# Name -> CREATE statement: the objects this migration (re)creates.
SQL_OBJECTS = {
    "healing_statistics_rows": STATISTICS_ROWS,
    "healing_statistics_view": STATISTICS_VIEW,
    "auto_heal_order": AUTO_HEAL_ORDER,
}

DROP_STATEMENTS = (
    "DROP FUNCTION IF EXISTS auto_heal_order(bigint, text, text)",
    "DROP VIEW IF EXISTS healing_statistics_view",
    "DROP FUNCTION IF EXISTS healing_statistics_rows()",
)


def _create(schema_editor, objects):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for statement in DROP_STATEMENTS:
            cursor.execute(statement)
        for statement in objects.values():
            cursor.execute(statement)


def forward(apps, schema_editor):
    _create(schema_editor, SQL_OBJECTS)


def backward(apps, schema_editor):
    previous = importlib.import_module("healing.migrations.0004_sql_views_and_functions")
    _create(schema_editor, {name: previous.SQL_OBJECTS[name] for name in SQL_OBJECTS})


class Migration(migrations.Migration):
    dependencies = [("healing", "0005_healing_triggers_skip_reasons")]

    operations = [migrations.RunPython(forward, backward)]
