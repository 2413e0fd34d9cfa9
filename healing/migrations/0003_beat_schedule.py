"""Register the periodic jobs in django-celery-beat's database schedule.

Editable in the admin afterwards (Periodic tasks); this migration never
overwrites an interval an operator changed.
"""

from django.db import migrations

JOBS = [
    # (name, task, every, period)
    ("self-healing cycle", "healing.tasks.run_cycle", 5, "minutes"),
    ("healing metrics roll-up", "healing.tasks.metrics_rollup", 1, "minutes"),
    ("admin notifications sweep", "notifications.tasks.notifications_sweep", 1, "minutes"),
]


def register(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, every, period in JOBS:
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
        PeriodicTask.objects.create(
            name=name,
            task=task,
            interval=interval,
            kwargs='{"trigger": "BEAT"}' if task.endswith("run_cycle") else "{}",
        )


def unregister(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, *_ in JOBS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("healing", "0002_seed_stuck_rules"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(register, unregister)]
