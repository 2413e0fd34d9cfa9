"""Invariant 13: notifications are acknowledged and resolved, never deleted.

The trigger function comes from orders' 0003 migration; only DELETE is refused
here because acknowledging, resolving and re-notifying update the row.
"""

from django.db import migrations


def _forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "CREATE TRIGGER admin_notifications_keep BEFORE DELETE ON admin_notifications "
        "FOR EACH ROW EXECUTE FUNCTION audit_row_refuse()"
    )


def _reverse(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP TRIGGER IF EXISTS admin_notifications_keep ON admin_notifications")


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0002_renotify_rounds"),
        ("orders", "0003_audit_triggers"),
    ]

    operations = [migrations.RunPython(_forward, _reverse)]
