"""What ``bench_healing`` checks before it touches anything: the services it
needs answer, and the database it is about to overwrite is meant for it.

A missing service fails here in one line naming the setting to fix, instead
of minutes later under a traceback from the first phase that needed it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
import redis
from django.core.management.base import CommandError

from config.database import server_params

MISSING = (
    "bench_healing needs PostgreSQL and Redis: set DATABASE_URL=postgres://... and "
    "CELERY_BROKER_URL=redis://... (make bench sets both to the local services)"
)


def services_check(
    *, db: Mapping[str, Any], broker: str, need_redis: bool, allow_any_database: bool
) -> None:
    """PostgreSQL answers (and Redis at ``broker`` when ``need_redis``), and
    the database's name contains "bench" unless ``allow_any_database``: a
    benchmark replaces the data of the database it runs on."""
    if "postgresql" not in db["ENGINE"]:
        raise CommandError(f"{MISSING}; DATABASE_URL is not a PostgreSQL URL")
    params = server_params(db)
    try:
        psycopg.connect(dbname="postgres", **params).close()
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CommandError(
            f"{MISSING}; PostgreSQL at {params['host']}:{params['port']} does not answer ({first})"
        ) from exc
    if need_redis:
        if not broker.startswith(("redis://", "rediss://")):
            raise CommandError(f"{MISSING}; CELERY_BROKER_URL is not a Redis URL")
        try:
            redis.Redis.from_url(broker, socket_connect_timeout=2).ping()
        except redis.RedisError as exc:
            raise CommandError(f"{MISSING}; Redis at {broker} does not answer ({exc})") from exc
    if "bench" not in db["NAME"] and not allow_any_database:
        raise CommandError(
            f"bench_healing replaces the data of database {db['NAME']!r}: point "
            "DATABASE_URL at a database whose name contains 'bench' "
            "(or pass --allow-any-database)"
        )
