"""Tests that empty an audit table between two measurements do it as the
retention command does (invariant 13): inside a transaction that allows it."""

from __future__ import annotations

from django.db import connection, transaction
from django.db.models import QuerySet


def audit_rows_delete(queryset: QuerySet) -> None:
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('audit.allow_prune', 'on', true)")
        queryset.delete()
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('audit.allow_prune', 'off', true)")
