from __future__ import annotations

import os

import pytest
from django.db import connection


def pytest_report_header(config: pytest.Config) -> list[str]:
    from django.conf import settings

    db = settings.DATABASES["default"]
    broker = settings.CELERY_BROKER_URL or "none (tasks run in-process)"
    return [
        f"database: {db['ENGINE'].rsplit('.', 1)[-1]} {db.get('HOST') or db['NAME']}",
        f"broker: {broker}",
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked postgres or integration are skipped on SQLite, never in CI."""
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    on_postgres = "postgresql" in engine
    has_broker = bool(os.environ.get("REDIS_URL"))
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            if os.environ.get("CI"):
                raise pytest.UsageError("CI must run on PostgreSQL: set DATABASE_URL")
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL"))
        if "integration" in item.keywords and not (on_postgres and has_broker):
            if os.environ.get("CI"):
                raise pytest.UsageError("CI must run with PostgreSQL and Redis")
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL and Redis"))


@pytest.fixture
def on_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture(autouse=True)
def _default_stuck_rules(request: pytest.FixtureRequest) -> None:
    """Transactional tests flush the database, data migrations included:
    put DESIGN.md's default rules back for every test that uses the database."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None:
        return
    transactional = marker.kwargs.get("transaction", False)
    request.getfixturevalue("transactional_db" if transactional else "db")
    from healing.defaults import default_rules
    from healing.models import StuckRule

    for rule in default_rules():
        StuckRule.objects.get_or_create(status=rule["status"], defaults=rule)
