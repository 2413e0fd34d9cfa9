"""JWT authentication: simplejwt's, saying "expired" when it is, and honouring revocations.

A token stops working when its user's password changes (simplejwt's
``CHECK_REVOKE_TOKEN``: every token carries a hash of the password hash), when
the user is deactivated, or after an admin's "log out everywhere"
(:func:`api.revocation.user_tokens_revoke`). The check runs on every request
here, and on refresh in ``api.auth``. Kept apart from the views: DRF imports
this class from settings while ``rest_framework.views`` is loading.

The user, its revocation and its roles come in one raw query (issue 21 item
7): simplejwt's lookup, the revocation read and the permission's groups read
were three ORM queries per request, and py-spy on the web workers under load
found half their CPU in authentication and permissions, most of it Django
building those queries. The checks and their messages are simplejwt's.
"""

from __future__ import annotations

import functools
from typing import Any

from django.contrib.auth.models import Group
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt import authentication
from rest_framework_simplejwt.exceptions import ExpiredTokenError, InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token
from rest_framework_simplejwt.utils import get_md5_hash_password

from api.models import TokenRevocation
from api.permissions import ROLES, roles_remember
from api.revocation import revocation_remember, token_revoked

EXPIRED_MESSAGE = (
    "The access token has expired: get a new one from /api/v1/auth/token/refresh or log in again."
)
PASSWORD_CHANGED_MESSAGE = "The user's password has changed since this token was issued."
REVOKED_MESSAGE = "This token was revoked (log out everywhere); log in again."


def token_user_check(*, token: Token, user: Any) -> None:
    """Refuse a token its user revoked: password changed or logged out everywhere."""
    if api_settings.CHECK_REVOKE_TOKEN and token.get(
        api_settings.REVOKE_TOKEN_CLAIM
    ) != get_md5_hash_password(user.password):
        raise AuthenticationFailed(PASSWORD_CHANGED_MESSAGE, code="password_changed")
    if token_revoked(user=user, issued_at=token.get("iat")):
        raise AuthenticationFailed(REVOKED_MESSAGE, code="token_revoked")


class JWTAuthentication(authentication.JWTAuthentication):
    """simplejwt's, saying "expired" when it is, and honouring revocations."""

    def get_validated_token(self, raw_token: bytes) -> Token:
        try:
            return super().get_validated_token(raw_token)
        except InvalidToken:
            for token_class in api_settings.AUTH_TOKEN_CLASSES:
                try:
                    token_class(raw_token)
                except ExpiredTokenError:
                    raise InvalidToken(
                        {"detail": EXPIRED_MESSAGE, "code": "token_not_valid"}
                    ) from None
                except TokenError:
                    continue
            raise

    def get_user(self, validated_token: Token) -> Any:
        """simplejwt's lookup and checks, with the revocation and roles in the same query."""
        try:
            user_id = validated_token[api_settings.USER_ID_CLAIM]
        except KeyError as exc:
            raise InvalidToken(
                str(_("Token contained no recognizable user identification"))
            ) from exc
        found = list(self.user_model.objects.raw(_user_sql(self.user_model), [*ROLES, user_id]))
        if not found:
            raise AuthenticationFailed(_("User not found"), code="user_not_found")
        user = found[0]
        if api_settings.CHECK_USER_IS_ACTIVE and not user.is_active:
            raise AuthenticationFailed(_("User is inactive"), code="user_inactive")
        if api_settings.CHECK_REVOKE_TOKEN and validated_token.get(
            api_settings.REVOKE_TOKEN_CLAIM
        ) != get_md5_hash_password(user.password):
            raise AuthenticationFailed(
                _("The user's password has been changed."), code="password_changed"
            )
        revocation_remember(user, getattr(user, "_revoked_at"))  # noqa: B009 - a raw column
        roles_remember(
            user, {role for index, role in enumerate(ROLES) if getattr(user, f"_role{index}")}
        )
        token_user_check(token=validated_token, user=user)
        return user


@functools.cache
def _user_sql(user_model: Any) -> str:
    """The user by ``USER_ID_FIELD``, its revocation time and one flag per role.

    Raw SQL: the same query through the ORM (select_related and three Exists)
    cost 1.6 ms of CPU to build and read, the three queries it replaces
    0.85 ms, this 0.17 ms (500 lookups in one process; docs/BENCHMARK.md).
    """
    quote = connection.ops.quote_name
    through = user_model.groups.through._meta
    user_column = through.get_field(user_model._meta.model_name).column
    group_column = through.get_field("group").column
    roles = ", ".join(
        f"EXISTS (SELECT 1 FROM {quote(through.db_table)} m"  # noqa: S608 - names from _meta
        f" JOIN {quote(Group._meta.db_table)} g ON g.id = m.{quote(group_column)}"
        f" WHERE m.{quote(user_column)} = u.{quote(user_model._meta.pk.column)}"
        f" AND g.name = %s) AS _role{index}"
        for index in range(len(ROLES))
    )
    key = user_model._meta.get_field(api_settings.USER_ID_FIELD).column
    return (
        f"SELECT u.*, r.revoked_at AS _revoked_at, {roles}"  # noqa: S608 - names from _meta
        f" FROM {quote(user_model._meta.db_table)} u"
        f" LEFT JOIN {quote(TokenRevocation._meta.db_table)} r"
        f" ON r.user_id = u.{quote(user_model._meta.pk.column)}"
        f" WHERE u.{quote(key)} = %s"
    )
