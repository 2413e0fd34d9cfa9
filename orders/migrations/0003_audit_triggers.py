"""Invariant 13: audit rows are never deleted or rewritten (PostgreSQL triggers).

One trigger function serves every audit table. It refuses the row-level
operation unless the transaction set ``audit.allow_prune = 'on'``, which only
``history_prune`` (and the tools that rebuild a database on purpose) do.
TRUNCATE, which Django's test flush and ``seed_marketplace`` use, fires no
row-level trigger. The append-only tables refuse UPDATE and DELETE.
"""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION audit_row_refuse() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('audit.allow_prune', true) = 'on' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% on % refused: audit rows are kept (invariant 13); '
        'retention is python manage.py history_prune', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END
$$;
"""

APPEND_ONLY = ("order_status_changes", "vendor_messages", "credit_entries")


def _forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION, params=None)
    for table in APPEND_ONLY:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_row_refuse()"
        )


def _reverse(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in APPEND_ONLY:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    schema_editor.execute("DROP FUNCTION IF EXISTS audit_row_refuse()")


class Migration(migrations.Migration):
    dependencies = [("orders", "0002_vendor_edges_credentials_idempotency")]

    operations = [migrations.RunPython(_forward, _reverse)]
