"""Fixtures of the API tests: users per role, JWT clients, default rules."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from healing.defaults import default_rules
from healing.models import StuckRule
from orders.roles import ADMIN, OPERATIONS, VIEWER, role_user_create

PASSWORD = "api-test-pw-123456"
ROLES = (ADMIN, OPERATIONS, VIEWER)


@pytest.fixture(autouse=True)
def _api_defaults(settings) -> None:
    # Throttling is tested on its own (test_throttling.py); elsewhere it would
    # turn the many requests of one test into 429s.
    settings.API_THROTTLE_ENABLED = False
    settings.HEALING_API_WAIT_SECONDS = 5
    settings.HEALING_API_POLL_SECONDS = 0.05
    cache.clear()


@pytest.fixture
def rules(db) -> list[StuckRule]:
    """The seeded default rules (a transactional test's flush removes migration data)."""
    return [
        StuckRule.objects.update_or_create(status=rule["status"], defaults=rule)[0]
        for rule in default_rules()
    ]


@pytest.fixture
def make_user(db) -> Callable[..., object]:
    def make(role: str | None, username: str | None = None):
        name = username or f"{(role or 'norole').lower()}-user"
        if role is None:
            from django.contrib.auth import get_user_model

            user = get_user_model().objects.create_user(username=name, password=PASSWORD)
            return user
        return role_user_create(username=name, password=PASSWORD, role=role)[0]

    return make


def bearer_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def client_for(make_user) -> Callable[[str | None], APIClient]:
    """An API client holding a real JWT access token of a user with ``role``."""

    def make(role: str | None) -> APIClient:
        if role == "anonymous":
            return APIClient()
        return bearer_client(make_user(role))

    return make


@pytest.fixture
def admin_api(client_for) -> APIClient:
    return client_for(ADMIN)


@pytest.fixture
def ops_api(client_for) -> APIClient:
    return client_for(OPERATIONS)


def assert_error(response, status: int, code: str, field: str | None = None) -> dict:
    """The one error shape: {"success": false, "error": {"code", "message", "field"}}."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) >= {"success", "error"}
    assert body["success"] is False
    assert set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["code"] == code, body
    assert body["error"]["field"] == field, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def pytest_terminal_summary(terminalreporter, config) -> None:
    cases = getattr(config, "api_schemathesis_cases", None)
    if cases:
        terminalreporter.write_line(
            f"schemathesis: {cases[0]} generated cases over {cases[1]} operations"
        )
