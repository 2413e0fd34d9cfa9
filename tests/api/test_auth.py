"""JWT: obtain, refresh with rotation and blacklist; refused tokens and users answer 401."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from orders.roles import ADMIN, OPERATIONS
from tests.api.helpers import PASSWORD, assert_error

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/v1/auth/token/"
REFRESH_URL = "/api/v1/auth/token/refresh/"
PROTECTED = "/api/v1/self-healing/rules"


def test_token_obtain_returns_access_and_refresh_that_authenticate(make_user):
    make_user(OPERATIONS, "ops")

    response = APIClient().post(TOKEN_URL, {"username": "ops", "password": PASSWORD})

    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    assert client.get(PROTECTED).status_code == 200


def test_access_token_lifetime_is_short(make_user, settings):
    make_user(OPERATIONS, "ops")
    access = APIClient().post(TOKEN_URL, {"username": "ops", "password": PASSWORD}).json()["access"]
    token = AccessToken(access)
    assert token["exp"] - token["iat"] == 15 * 60


def test_wrong_password_is_401_with_error_body(make_user):
    make_user(OPERATIONS, "ops")

    response = APIClient().post(TOKEN_URL, {"username": "ops", "password": "wrong"})

    assert_error(response, 401, "no_active_account")


def test_inactive_user_gets_no_token(make_user):
    user = make_user(ADMIN, "gone")
    user.is_active = False
    user.save(update_fields=["is_active"])

    response = APIClient().post(TOKEN_URL, {"username": "gone", "password": PASSWORD})

    assert_error(response, 401, "no_active_account")


def test_token_request_without_password_names_the_field():
    response = APIClient().post(TOKEN_URL, {"username": "ops"})

    error = assert_error(response, 400, "required", "password")
    assert "password" in error["message"]


def test_refresh_rotates_and_blacklists_the_old_refresh_token(make_user):
    make_user(OPERATIONS, "ops")
    first = APIClient().post(TOKEN_URL, {"username": "ops", "password": PASSWORD}).json()

    rotated = APIClient().post(REFRESH_URL, {"refresh": first["refresh"]})

    assert rotated.status_code == 200
    assert set(rotated.json()) == {"access", "refresh"}
    assert rotated.json()["refresh"] != first["refresh"]
    reused = APIClient().post(REFRESH_URL, {"refresh": first["refresh"]})
    assert_error(reused, 401, "token_not_valid")


def test_no_token_is_401_with_www_authenticate():
    response = APIClient().get(PROTECTED)

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_expired_token_is_401(make_user):
    user = make_user(ADMIN, "admin")
    with time_machine.travel(timezone.now() - timedelta(hours=1), tick=False):
        access = str(RefreshToken.for_user(user).access_token)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")

    response = client.get(PROTECTED)

    assert_error(response, 401, "token_not_valid")


def test_tampered_token_is_401(make_user):
    user = make_user(ADMIN, "admin")
    access = str(RefreshToken.for_user(user).access_token)
    header, payload, signature = access.split(".")
    # Flip one character of the signature: the claims no longer verify.
    tampered = ".".join(
        [header, payload, signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]]
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tampered}")

    response = client.get(PROTECTED)

    assert_error(response, 401, "token_not_valid")


def test_token_signed_with_another_key_is_401(make_user):
    user = make_user(ADMIN, "admin")
    token = AccessToken.for_user(user)
    import jwt

    forged = jwt.encode(
        dict(token.payload), "not-our-signing-key-but-long-enough-for-hs256", algorithm="HS256"
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")

    assert_error(client.get(PROTECTED), 401, "token_not_valid")


def test_garbage_bearer_is_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-jwt")

    assert_error(client.get(PROTECTED), 401, "token_not_valid")


def test_deactivated_user_with_a_valid_token_is_401(make_user):
    user = make_user(ADMIN, "admin")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    assert client.get(PROTECTED).status_code == 200

    user.is_active = False
    user.save(update_fields=["is_active"])

    assert_error(client.get(PROTECTED), 401, "user_inactive")


def test_refresh_token_is_not_accepted_as_access_token(make_user):
    user = make_user(ADMIN, "admin")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user)}")

    assert_error(client.get(PROTECTED), 401, "token_not_valid")


def test_deactivated_user_cannot_refresh(make_user):
    user = make_user(ADMIN, "admin")
    refresh = str(RefreshToken.for_user(user))
    user.is_active = False
    user.save(update_fields=["is_active"])

    response = APIClient().post(REFRESH_URL, {"refresh": refresh})

    assert response.status_code == 401
    assert response.json()["success"] is False


def test_session_authentication_serves_the_browsable_api(make_user):
    client = APIClient()
    client.force_login(make_user(OPERATIONS, "ops"))

    response = client.get(PROTECTED, HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"StuckRule" in response.content or b"rules" in response.content


def test_session_post_without_csrf_token_is_refused_as_json(make_user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(make_user(OPERATIONS, "ops"))

    response = client.post("/api/v1/self-healing/run-cycle")

    error = assert_error(response, 403, "permission_denied")
    assert "CSRF" in error["message"]
