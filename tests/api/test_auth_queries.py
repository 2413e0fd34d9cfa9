"""A token's user, revocation and role come in one query (issue 21 item 7)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIRequestFactory
from rest_framework_simplejwt.tokens import RefreshToken

from api.authentication import JWTAuthentication
from api.permissions import user_role
from api.revocation import user_tokens_revoke
from orders.roles import ADMIN, OPERATIONS, VIEWER
from tests.api.helpers import assert_error, bearer_client

pytestmark = pytest.mark.django_db


def _request(user):
    token = RefreshToken.for_user(user).access_token
    return APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.mark.parametrize("role", [ADMIN, OPERATIONS, VIEWER, None])
def test_authentication_and_role_take_one_query_and_agree_with_the_groups(make_user, role):
    user = make_user(role)
    request = _request(user)
    with CaptureQueriesContext(connection) as queries:
        authenticated, _ = JWTAuthentication().authenticate(request)
        role_read = user_role(authenticated)

    assert len(queries) == 1, [query["sql"] for query in queries]
    assert role_read == role == user_role(type(user).objects.get(pk=user.pk))


def test_a_group_added_after_the_token_counts_at_the_next_request(make_user):
    user = make_user(VIEWER)
    client = bearer_client(user)
    assert client.get("/api/v1/self-healing/stuck-orders").status_code == 403

    user.groups.add(Group.objects.get(name=OPERATIONS))

    assert client.get("/api/v1/self-healing/stuck-orders").status_code == 200


def test_tokens_revoked_after_they_were_read_once_are_refused(make_user):
    user = make_user(OPERATIONS)
    client = bearer_client(user)
    assert client.get("/api/v1/self-healing/rules").status_code == 200

    user_tokens_revoke(user=user)

    assert_error(client.get("/api/v1/self-healing/rules"), 401, "token_revoked")
