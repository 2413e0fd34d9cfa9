"""JWT authentication: simplejwt's, saying "expired" when it is, and honouring revocations.

A token stops working when its user's password changes (simplejwt's
``CHECK_REVOKE_TOKEN``: every token carries a hash of the password hash), when
the user is deactivated, or after an admin's "log out everywhere"
(:func:`api.revocation.user_tokens_revoke`). The check runs on every request
here, and on refresh in ``api.auth``. Kept apart from the views: DRF imports
this class from settings while ``rest_framework.views`` is loading.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt import authentication
from rest_framework_simplejwt.exceptions import ExpiredTokenError, InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token
from rest_framework_simplejwt.utils import get_md5_hash_password

from api.revocation import token_revoked

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
        user = super().get_user(validated_token)
        token_user_check(token=validated_token, user=user)
        return user
