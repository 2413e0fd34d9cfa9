"""``manage.py create_database``: the configured PostgreSQL database, created if absent."""

from __future__ import annotations

from typing import Any

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.database import database_ensure, server_params


class Command(BaseCommand):
    help = (
        "Create the configured PostgreSQL database when it does not exist "
        "(make run's first step; SQLite needs nothing: migrate creates the file)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        db = settings.DATABASES["default"]
        name = db["NAME"]
        if db["ENGINE"] != "django.db.backends.postgresql":
            self.stdout.write(f"{name}: SQLite, created by migrate")
            return
        try:
            created = database_ensure(db)
        except psycopg.Error as exc:
            params = server_params(db)
            reason = " ".join(str(exc).split())
            raise CommandError(
                f"cannot create database {name!r} on {params['host']}:{params['port']}: {reason}"
            ) from None
        self.stdout.write(f"created database {name}" if created else f"database {name} exists")
