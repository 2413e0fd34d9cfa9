"""Formerly registered the periodic jobs; now a no-op kept for the migration graph.

The jobs' single source is ``settings.BEAT_SCHEDULE``: ``config.beat`` creates
the django-celery-beat rows after every ``migrate`` (post_migrate), fresh
database or existing one, and never overwrites an interval an operator changed
in the admin. Databases that ran the old version keep its rows; the sync
adopts them (it knows the intervals this migration wrote, 5 and 1 minutes).
A migration reads nothing from live modules or settings, so this one does
nothing.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("healing", "0002_seed_stuck_rules"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = []
