"""Helpers of the API tests: the test password, JWT clients, the one error shape."""

from __future__ import annotations

from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from orders.roles import ADMIN, OPERATIONS, VIEWER

PASSWORD = "api-test-pw-123456"
ROLES = (ADMIN, OPERATIONS, VIEWER)


def bearer_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


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
