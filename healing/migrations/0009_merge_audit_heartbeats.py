"""Merge of issue 19's audit triggers (0007) and issue 16's heartbeats (0008)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("healing", "0007_audit_triggers_redrive"),
        ("healing", "0008_recovery_heartbeats"),
    ]

    operations = []
