"""Invariant 13 for healings and cycles, and the redrive token ledger (issue 19).

The engine updates healing and cycle rows (status, counters, resolution), so
only DELETE is refused; the trigger function is orders' 0003. PostgreSQL only.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

KEPT = ("healing_actions", "healing_cycles")


def _forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in KEPT:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_keep BEFORE DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_row_refuse()"
        )


def _reverse(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in KEPT:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_keep ON {table}")


class Migration(migrations.Migration):
    dependencies = [
        ("healing", "0006_reports_statistics_by_status"),
        ("orders", "0003_audit_triggers"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(_forward, _reverse),
        migrations.CreateModel(
            name="RedriveExecution",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("token_hash", models.CharField(max_length=64, unique=True)),
                ("filter_hash", models.CharField(max_length=64)),
                ("healings_started", models.PositiveIntegerField(default=0)),
                ("executed_at", models.DateTimeField()),
                (
                    "requested_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"db_table": "healing_redrive_executions", "ordering": ["-executed_at"]},
        ),
    ]
