from __future__ import annotations

import os

import pytest
from django.db import connection

from tests.factories import StuckRuleFactory


def _redis_db_per_xdist_worker() -> None:
    """Under pytest-xdist (scripts/test.sh's phase 1 runs ``-n 2``) each worker
    gets its own test database (pytest-django's _gw<n> suffix) and, here, its
    own Redis DB index: REDIS_URL's index + n, so one worker's cache.clear()
    never empties the other's cache. Processes a test starts read REDIS_URL too."""
    from django.conf import settings
    from django.core.cache import caches

    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    url = os.environ.get("REDIS_URL", "")
    if not worker.startswith("gw") or not url.startswith("redis"):
        return
    base, _, index = url.rstrip("/").rpartition("/")
    if not index.isdigit():
        base, index = url.rstrip("/"), "0"
    own = f"{base}/{(int(index) + int(worker[2:])) % 16}"
    os.environ["REDIS_URL"] = own
    settings.REDIS_URL = own
    settings.CACHES["default"]["LOCATION"] = own
    caches.__dict__.pop("settings", None)  # re-read CACHES if it was read already


_redis_db_per_xdist_worker()


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
    put the default rules (healing/defaults.py) back for every test that uses the database."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None:
        return
    transactional = marker.kwargs.get("transaction", False)
    request.getfixturevalue("transactional_db" if transactional else "db")
    from healing.defaults import default_rules
    from healing.models import StuckRule

    for rule in default_rules():
        StuckRule.objects.get_or_create(status=rule["status"], defaults=rule)


# --- API fixtures: users per role, JWT clients, default rules ------------------


@pytest.fixture
def api_defaults(settings) -> None:
    """Throttling off (tested on its own in tests/api/test_throttling.py: elsewhere
    it would turn the many requests of one test into 429s), short run-cycle waits."""
    from django.core.cache import cache

    settings.API_THROTTLE_ENABLED = False
    settings.HEALING_API_WAIT_SECONDS = 5
    settings.HEALING_API_POLL_SECONDS = 0.05
    cache.clear()


@pytest.fixture
def rules(db) -> list:
    """The seeded default rules (a transactional test's flush removes migration data)."""
    from healing.defaults import default_rules
    from healing.models import StuckRule

    return [
        StuckRule.objects.update_or_create(status=rule["status"], defaults=rule)[0]
        for rule in default_rules()
    ]


@pytest.fixture
def make_user(db):
    from tests.api.helpers import PASSWORD

    def make(role: str | None, username: str | None = None):
        from django.contrib.auth import get_user_model

        from orders.roles import role_user_create

        name = username or f"{(role or 'norole').lower()}-user"
        if role is None:
            return get_user_model().objects.create_user(username=name, password=PASSWORD)
        return role_user_create(username=name, password=PASSWORD, role=role)[0]

    return make


@pytest.fixture
def client_for(make_user):
    """An API client holding a real JWT access token of a user with ``role``."""
    from rest_framework.test import APIClient

    from tests.api.helpers import bearer_client

    def make(role: str | None) -> APIClient:
        if role == "anonymous":
            return APIClient()
        return bearer_client(make_user(role))

    return make


@pytest.fixture
def admin_api(client_for):
    return client_for("ADMIN")


@pytest.fixture
def ops_api(client_for):
    return client_for("OPERATIONS")


# --- Shared by the notification and healing monitoring tests ---------------------


@pytest.fixture
def quiet_channels(settings):
    """Only the dashboard and email (locmem in tests): no network."""
    settings.NOTIFICATION_CHANNELS = {
        "LOW": ["dashboard"],
        "MEDIUM": ["dashboard", "email"],
        "HIGH": ["dashboard", "email"],
        "CRITICAL": ["dashboard", "email"],
    }
    settings.NOTIFICATION_EMAIL_TO = ["ops@example.com"]
    settings.NOTIFICATION_WEBHOOK_URL = ""
    return settings


@pytest.fixture
def stuck_rules(db):
    """The default rules (healing/defaults.py): a transactional test's flush
    removes the seeded ones."""
    from healing.defaults import default_rules

    return {rule["status"]: StuckRuleFactory(**rule) for rule in default_rules()}
