from django.db import migrations


def seed_rules(apps, schema_editor):
    from healing.defaults import default_rules

    StuckRule = apps.get_model("healing", "StuckRule")
    for rule in default_rules():
        StuckRule.objects.update_or_create(
            status=rule["status"],
            defaults={
                "issue_type": rule["issue_type"],
                "threshold_minutes": rule["threshold_minutes"],
                "ladder": rule["ladder"],
            },
        )


class Migration(migrations.Migration):
    dependencies = [("healing", "0001_initial")]

    operations = [migrations.RunPython(seed_rules, migrations.RunPython.noop)]
