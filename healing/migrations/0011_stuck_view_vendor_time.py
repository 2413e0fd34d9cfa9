"""The seed's stuck_orders_view follows vendor time (issue 18): an order whose
vendor keeps a calendar is stuck when its due time has passed, the others when
their stuck clock is past the threshold, as healing.detection decides.
PostgreSQL only. Frozen SQL (a migration never imports live modules); the way
back restores 0004's text.
"""

import importlib

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

SQL_OBJECTS = {"healing_stuck_orders_rows": STUCK_ORDERS_ROWS}


def _create(schema_editor, objects):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        # Same result columns: CREATE OR REPLACE keeps the view built on it.
        for statement in objects.values():
            cursor.execute(statement)


def forward(apps, schema_editor):
    _create(schema_editor, SQL_OBJECTS)


def backward(apps, schema_editor):
    previous = importlib.import_module("healing.migrations.0004_sql_views_and_functions")
    _create(schema_editor, {name: previous.SQL_OBJECTS[name] for name in SQL_OBJECTS})


class Migration(migrations.Migration):
    dependencies = [("healing", "0010_vendor_health_silences")]

    operations = [migrations.RunPython(forward, backward)]
