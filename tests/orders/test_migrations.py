"""The schema the migrations build is the one the models declare, plus its tuning."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

pytestmark = pytest.mark.django_db


def test_every_model_change_has_its_migration():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)  # exits 1 if not
    assert "No changes detected" in out.getvalue()


def test_orders_is_vacuumed_after_two_percent_of_it_changed():
    if connection.vendor != "postgresql":
        pytest.skip("autovacuum settings are PostgreSQL's")
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'orders'")
        (options,) = cursor.fetchone()
    assert "autovacuum_vacuum_scale_factor=0.02" in options
    assert "autovacuum_vacuum_insert_scale_factor=0.02" in options
