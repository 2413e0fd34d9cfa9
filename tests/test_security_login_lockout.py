"""The admin and dashboard login forms lock out after repeated failures (issue 21 item 2).

django-axes counts failures per username and per client address; once
locked, even the right password is refused until the cool-down ends. The
client address is api.clients' trusted-proxy rule, so a rotating
X-Forwarded-For does not reset the count. The API's token endpoint is left
to its own throttle.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import time_machine
from axes.models import AccessAttempt
from django.urls import reverse
from django.utils import timezone

from orders.roles import ADMIN, role_user_create

pytestmark = pytest.mark.django_db

PASSWORD = "pw-lockout-123456"
LOGIN_FORMS = ["admin:login", "dashboard:login"]


@pytest.fixture(autouse=True)
def _lockout_settings(settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 10
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    settings.TRUSTED_PROXY_COUNT = 0
    settings.API_THROTTLE_ENABLED = False
    # Dozens of password checks per test: a fast hasher keeps them cheap.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice():
    return role_user_create(username="alice-lockout", password=PASSWORD, role=ADMIN)[0]


def _login(client, form: str, username: str, password: str, **headers):
    return client.post(reverse(form), {"username": username, "password": password}, **headers)


def _logged_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.parametrize("form", LOGIN_FORMS)
def test_forty_wrong_passwords_lock_the_form_and_the_right_one_is_refused(
    client, alice, form, caplog
):
    caplog.set_level(logging.WARNING, logger="axes")
    statuses = [_login(client, form, alice.username, "wrong").status_code for _ in range(40)]

    # The first failures are the form's own "wrong password" page, then 429s.
    assert statuses[:9] == [200] * 9
    assert set(statuses[10:]) == {429}
    locked = _login(client, form, alice.username, PASSWORD)
    assert locked.status_code == 429
    assert not _logged_in(client)
    page = locked.content.decode()
    assert "Too many failed login attempts" in page
    assert "locked" in page and "try again later" in page
    # The lockout is logged, and visible in the admin.
    lockouts = [r.getMessage() for r in caplog.records if "Locking out" in r.getMessage()]
    assert lockouts and alice.username in lockouts[0]
    assert AccessAttempt.objects.filter(username=alice.username).exists()


def test_the_right_password_works_again_after_the_cool_down(client, alice):
    for _ in range(12):
        _login(client, "admin:login", alice.username, "wrong")
    assert _login(client, "admin:login", alice.username, PASSWORD).status_code == 429

    with time_machine.travel(timezone.now() + timedelta(minutes=16), tick=False):
        response = _login(client, "admin:login", alice.username, PASSWORD)
    assert response.status_code == 302
    assert _logged_in(client)


def test_one_address_is_locked_across_usernames_even_with_a_rotating_forwarded_for(client, alice):
    for n in range(12):
        _login(
            client,
            "dashboard:login",
            f"guess-{n}",
            "wrong",
            REMOTE_ADDR="203.0.113.7",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}",
        )
    response = _login(
        client,
        "dashboard:login",
        alice.username,
        PASSWORD,
        REMOTE_ADDR="203.0.113.7",
        HTTP_X_FORWARDED_FOR="198.51.100.200",
    )
    assert response.status_code == 429
    assert not _logged_in(client)


def test_one_username_is_locked_across_addresses(client, alice):
    for n in range(12):
        _login(client, "admin:login", alice.username, "wrong", REMOTE_ADDR=f"192.0.2.{n}")
    response = _login(client, "admin:login", alice.username, PASSWORD, REMOTE_ADDR="192.0.2.99")
    assert response.status_code == 429
    assert not _logged_in(client)


def test_a_success_before_the_limit_resets_the_count(client, alice):
    for _ in range(9):
        _login(client, "admin:login", alice.username, "wrong")
    assert _login(client, "admin:login", alice.username, PASSWORD).status_code == 302
    client.logout()
    for _ in range(9):
        assert _login(client, "admin:login", alice.username, "wrong").status_code == 200
    assert _login(client, "admin:login", alice.username, PASSWORD).status_code == 302


def test_an_admin_sees_the_lockouts_in_the_admin(client, alice, django_user_model):
    for _ in range(11):
        _login(client, "admin:login", alice.username, "wrong", REMOTE_ADDR="203.0.113.9")
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-1")
    client.force_login(root)
    page = client.get(reverse("admin:axes_accessattempt_changelist"))
    assert page.status_code == 200
    html = page.content.decode()
    assert alice.username in html and "203.0.113.9" in html


def test_the_jwt_token_endpoint_is_not_locked_by_the_form_lockout(client, alice):
    url = reverse("token_obtain_pair")
    for _ in range(15):
        wrong = client.post(
            url, {"username": alice.username, "password": "wrong"}, content_type="application/json"
        )
        assert wrong.status_code == 401
    right = client.post(
        url, {"username": alice.username, "password": PASSWORD}, content_type="application/json"
    )
    assert right.status_code == 200
    assert "access" in right.json()
    assert not AccessAttempt.objects.exists()
