"""The role matrix of issue 7, one test per endpoint and role.

| endpoint                                                | ADMIN | OPERATIONS | VIEWER | no token |
|---------------------------------------------------------|-------|------------|--------|----------|
| stuck-orders, healing-actions, cycles, notifications,   |  200  |    200     |  403   |   401    |
| rules (read); heal, run-cycle                           |       |            |        |          |
| acknowledge, resolve                                    |  200  |    403     |  403   |   401    |
| statistics, kpis                                        |  200  |    200     |  200   |   401    |
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from orders.roles import ADMIN, OPERATIONS, VIEWER
from tests.api.helpers import assert_error
from tests.factories import (
    AdminNotificationFactory,
    HealingActionFactory,
    HealingCycleFactory,
    OrderFactory,
    VendorFactory,
)

pytestmark = pytest.mark.django_db

BASE = "/api/v1/self-healing"
ANON = "anonymous"
NO_ROLE = None


def _stuck_order_url() -> str:
    VendorFactory()  # somewhere to reassign to
    order = OrderFactory(status="PENDING", stuck_minutes=45)
    return f"{BASE}/heal/{order.pk}"


def _notification(action: str) -> Callable[[], str]:
    def make() -> str:
        return f"{BASE}/notifications/{AdminNotificationFactory().pk}/{action}"

    return make


# name -> (method, url factory, allowed roles)
OPERATOR = (ADMIN, OPERATIONS)
ENDPOINTS: dict[str, tuple[str, Callable[[], str], tuple[str, ...]]] = {
    "stuck-orders": ("get", lambda: f"{BASE}/stuck-orders", OPERATOR),
    "healing-actions": ("get", lambda: f"{BASE}/healing-actions", OPERATOR),
    "healing-action": (
        "get",
        lambda: f"{BASE}/healing-actions/{HealingActionFactory().pk}",
        OPERATOR,
    ),
    "cycles": ("get", lambda: f"{BASE}/cycles", OPERATOR),
    "cycle": ("get", lambda: f"{BASE}/cycles/{HealingCycleFactory().pk}", OPERATOR),
    "notifications": ("get", lambda: f"{BASE}/notifications", OPERATOR),
    "rules": ("get", lambda: f"{BASE}/rules", OPERATOR),
    "heal": ("post", _stuck_order_url, OPERATOR),
    "run-cycle": ("post", lambda: f"{BASE}/run-cycle", OPERATOR),
    "acknowledge": ("post", _notification("acknowledge"), (ADMIN,)),
    "resolve": ("post", _notification("resolve"), (ADMIN,)),
    "statistics": ("get", lambda: f"{BASE}/statistics?days=7", (ADMIN, OPERATIONS, VIEWER)),
    "kpis": ("get", lambda: f"{BASE}/kpis?days=7", (ADMIN, OPERATIONS, VIEWER)),
}


def _cases():
    for name, (_, _, allowed) in ENDPOINTS.items():
        for role in (ADMIN, OPERATIONS, VIEWER, NO_ROLE, ANON):
            if role == ANON:
                expected = 401
            elif role in allowed:
                expected = 200
            else:
                expected = 403
            yield pytest.param(name, role, expected, id=f"{name}-{role}-{expected}")


@pytest.mark.parametrize(("endpoint", "role", "expected"), list(_cases()))
def test_role_matrix(endpoint, role, expected, client_for, rules):
    method, url_for, _ = ENDPOINTS[endpoint]
    url = url_for()
    client = client_for(role)

    response = getattr(client, method)(url)

    if expected == 200:
        assert response.status_code == 200, response.content[:500]
        assert response.json()["success"] is True
    elif expected == 401:
        assert_error(response, 401, "not_authenticated")
    else:
        error = assert_error(response, 403, "permission_denied")
        assert ("may not do this" in error["message"]) or ("permission" in error["message"])


def test_forbidden_role_changes_nothing(client_for, rules):
    """A VIEWER's heal is refused before anything is written."""
    from healing.models import HealingAction

    url = _stuck_order_url()
    response = client_for(VIEWER).post(url)

    assert_error(response, 403, "permission_denied")
    assert not HealingAction.objects.exists()


def test_role_matrix_is_in_the_openapi_descriptions(admin_api):
    schema = admin_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]

    def roles(path: str, method: str) -> str:
        return paths[f"{BASE}{path}"][method]["description"].rsplit("**Roles:**", 1)[1].strip()

    assert roles("/stuck-orders", "get") == "ADMIN, OPERATIONS."
    assert roles("/heal/{order_id}", "post") == "ADMIN, OPERATIONS."
    assert roles("/run-cycle", "post") == "ADMIN, OPERATIONS."
    assert roles("/notifications/{notification_id}/acknowledge", "post") == "ADMIN."
    assert roles("/notifications/{notification_id}/resolve", "post") == "ADMIN."
    assert roles("/statistics", "get") == "ADMIN, OPERATIONS, VIEWER."
    assert roles("/kpis", "get") == "ADMIN, OPERATIONS, VIEWER."
    assert "security" not in paths["/api/v1/health"]["get"] or paths["/api/v1/health"]["get"][
        "security"
    ] in ([], [{}])


@pytest.mark.parametrize("role", [ADMIN])
def test_superuser_counts_as_admin(role, db):
    from django.contrib.auth import get_user_model

    from tests.api.helpers import bearer_client

    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456-x")
    notification = AdminNotificationFactory()

    client = bearer_client(root)

    assert client.get(f"{BASE}/rules").status_code == 200
    assert client.post(f"{BASE}/notifications/{notification.pk}/acknowledge").status_code == 200
