"""The seed's views and functions for psql users (PostgreSQL only; a no-op on SQLite).

See healing/sql_objects.py: the views read set-returning functions, so they
never block a later ALTER/DROP COLUMN. A later migration that changes a
column these functions read re-runs ``sql_objects_forward``.
"""

from django.db import migrations

from healing.sql_objects import sql_objects_backward, sql_objects_forward


class Migration(migrations.Migration):
    dependencies = [("healing", "0003_beat_schedule")]

    operations = [migrations.RunPython(sql_objects_forward, sql_objects_backward)]
