"""The configured PostgreSQL database: how to reach its server, and creating it.

``make run`` creates the database before it migrates (``manage.py
create_database``): on a fresh machine ``cp .env.example .env && make run``
otherwise stopped at migrate's "database does not exist". The benchmark
creates its own databases the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql


def server_params(settings_db: Mapping[str, Any]) -> dict[str, Any]:
    """psycopg connection parameters for the server of a DATABASES entry."""
    return {
        "host": settings_db.get("HOST") or "127.0.0.1",
        "port": int(settings_db.get("PORT") or 5432),
        "user": settings_db.get("USER") or "postgres",
        "password": settings_db.get("PASSWORD") or None,
        "connect_timeout": 3,
    }


def database_ensure(settings_db: Mapping[str, Any]) -> bool:
    """Create the database when absent; True when it was created.

    Connects to the server's ``postgres`` maintenance database as the
    configured user, who needs CREATEDB for a database that is missing.
    """
    params = server_params(settings_db)
    name = settings_db["NAME"]
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return True
