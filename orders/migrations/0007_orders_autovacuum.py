"""Autovacuum on ``orders`` after 2 % of its rows changed, not PostgreSQL's 20 %.

Detection reads open orders through covering indexes (0005); an index-only
scan still visits the table for every page not marked all-visible, and every
status change or bulk due-time rewrite (a calendar edit, issue 18) clears
that mark until a vacuum sets it again. At 1M orders the default waits for
200k changed rows: a 37k-order calendar rewrite measured 1,556 + 599 table
fetches and detection 155 ms against 116 ms vacuumed (docs/BENCHMARK.md).
PostgreSQL only; nothing to do on SQLite.
"""

from django.db import migrations

SETTINGS = (
    "autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000, "
    "autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02"
)
RESET = (
    "autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, "
    "autovacuum_vacuum_insert_scale_factor, autovacuum_analyze_scale_factor"
)


def _alter(sql: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            table = schema_editor.quote_name(apps.get_model("orders", "Order")._meta.db_table)
            schema_editor.execute(sql.format(table=table))

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0006_status_change_actor_protect"),
    ]

    operations = [
        migrations.RunPython(
            _alter(f"ALTER TABLE {{table}} SET ({SETTINGS})"),
            _alter(f"ALTER TABLE {{table}} RESET ({RESET})"),
        ),
    ]
