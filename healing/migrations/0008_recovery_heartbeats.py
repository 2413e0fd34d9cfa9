"""Issue 16: the cycle lock's heartbeat and a retrying healing's next attempt."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("healing", "0007_audit_triggers_redrive")]

    operations = [
        migrations.AddField(
            model_name="healingcycle",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="healingaction",
            name="next_attempt_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
