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


# --- issue 20 item 10: no trailing slash, the old spelling kept -------------------


@pytest.mark.parametrize("debug", [False, True])
def test_token_endpoints_answer_without_a_trailing_slash(make_user, settings, debug):
    settings.DEBUG = debug
    make_user(OPERATIONS, "ops")
    client = APIClient()

    pair = client.post("/api/v1/auth/token", {"username": "ops", "password": PASSWORD})
    assert pair.status_code == 200, pair.content
    rotated = client.post("/api/v1/auth/token/refresh", {"refresh": pair.json()["refresh"]})
    assert rotated.status_code == 200
    assert set(rotated.json()) == {"access", "refresh"}
    # The slash spelling still works (TOKEN_URL / REFRESH_URL above use it).
    again = client.post(REFRESH_URL, {"refresh": rotated.json()["refresh"]})
    assert again.status_code == 200


# --- issue 20 item 14: an expired token says so ------------------------------------


def test_expired_token_says_it_expired(make_user):
    user = make_user(ADMIN, "admin")
    with time_machine.travel(timezone.now() - timedelta(hours=1), tick=False):
        access = str(RefreshToken.for_user(user).access_token)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")

    error = assert_error(client.get(PROTECTED), 401, "token_not_valid")

    assert "expired" in error["message"]
    assert "not valid for any token type" not in error["message"]


def test_expired_refresh_token_says_it_expired(make_user):
    user = make_user(ADMIN, "admin")
    with time_machine.travel(timezone.now() - timedelta(days=3), tick=False):
        refresh = str(RefreshToken.for_user(user))

    error = assert_error(
        APIClient().post(REFRESH_URL, {"refresh": refresh}), 401, "token_not_valid"
    )

    assert "expired" in error["message"]


# --- issue 21 item 3: revocation ------------------------------------------------------


def _login(username: str) -> dict:
    response = APIClient().post("/api/v1/auth/token", {"username": username, "password": PASSWORD})
    assert response.status_code == 200
    return response.json()


def _bearer(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def test_a_password_change_revokes_the_old_access_and_refresh_tokens(make_user):
    user = make_user(OPERATIONS, "ops")
    old = _login("ops")
    assert _bearer(old["access"]).get(PROTECTED).status_code == 200

    user.set_password("a-new-password-4567")
    user.save(update_fields=["password"])

    assert_error(_bearer(old["access"]).get(PROTECTED), 401, "password_changed")
    error = assert_error(
        APIClient().post("/api/v1/auth/token/refresh", {"refresh": old["refresh"]}),
        401,
        "password_changed",
    )
    assert "password" in error["message"]
    # The new password gets tokens that work.
    fresh = APIClient().post(
        "/api/v1/auth/token", {"username": "ops", "password": "a-new-password-4567"}
    )
    assert _bearer(fresh.json()["access"]).get(PROTECTED).status_code == 200


def test_deactivation_revokes_the_access_and_refresh_tokens(make_user):
    user = make_user(OPERATIONS, "ops")
    old = _login("ops")

    user.is_active = False
    user.save(update_fields=["is_active"])

    assert _bearer(old["access"]).get(PROTECTED).status_code == 401
    assert APIClient().post(REFRESH_URL, {"refresh": old["refresh"]}).status_code == 401


def test_log_out_everywhere_revokes_every_token_issued_before_it(make_user):
    from api.revocation import user_tokens_revoke

    user = make_user(OPERATIONS, "ops")
    with time_machine.travel(timezone.now() - timedelta(seconds=5), tick=False):
        first, second = _login("ops"), _login("ops")
    other = make_user(ADMIN, "other")
    others = _login("other")

    blacklisted = user_tokens_revoke(user=user)

    assert blacklisted == 2
    for pair in (first, second):
        assert_error(_bearer(pair["access"]).get(PROTECTED), 401, "token_revoked")
        assert APIClient().post(REFRESH_URL, {"refresh": pair["refresh"]}).status_code == 401
    # Someone else's tokens, and a new login after the revocation, still work.
    assert _bearer(others["access"]).get(PROTECTED).status_code == 200
    assert other.pk != user.pk
    with time_machine.travel(timezone.now() + timedelta(seconds=2), tick=False):
        after = _login("ops")
        assert _bearer(after["access"]).get(PROTECTED).status_code == 200


def test_the_admin_action_logs_a_user_out_everywhere(make_user, client):
    from django.contrib.auth import get_user_model

    user = make_user(OPERATIONS, "ops")
    with time_machine.travel(timezone.now() - timedelta(seconds=5), tick=False):
        old = _login("ops")
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456-x")
    client.force_login(root)

    response = client.post(
        "/admin/auth/user/",
        {"action": "tokens_revoke_action", "_selected_action": [user.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert b"Revoked the API tokens of 1 user(s)" in response.content
    assert _bearer(old["access"]).get(PROTECTED).status_code == 401
