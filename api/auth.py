"""JWT endpoints (simplejwt): throttled, strict bodies, revocation-aware refresh.

A password guesser gets 429s, not answers; a refresh token issued before a
password change or a "log out everywhere" mints nothing (``api.authentication``).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework_simplejwt.serializers import (
    TokenObtainPairSerializer,
    TokenRefreshSerializer,
)
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from api.authentication import token_user_check
from api.inputs import StrictKeysMixin
from api.schema import error_responses
from api.throttles import SettingsScopedThrottle


class TokenObtainInputSerializer(StrictKeysMixin, TokenObtainPairSerializer):
    class Meta:
        ref_name = "TokenObtainPair"  # simplejwt's component name, kept for clients


class TokenRefreshInputSerializer(StrictKeysMixin, TokenRefreshSerializer):
    class Meta:
        ref_name = "TokenRefresh"

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        refresh = self.token_class(attrs["refresh"])
        user_id = refresh.payload.get(api_settings.USER_ID_CLAIM)
        user = get_user_model().objects.filter(**{api_settings.USER_ID_FIELD: user_id}).first()
        if user is not None:
            token_user_check(token=refresh, user=user)
        return super().validate(attrs)


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField(help_text="JWT access token: `Authorization: Bearer <access>`.")
    refresh = serializers.CharField(help_text="JWT refresh token (rotated on each refresh).")

    class Meta:
        ref_name = "TokenPair"


@extend_schema(
    description=(
        "Exchange a username and password for an access token (short-lived) and a "
        "refresh token. Inactive users are refused. Also served at "
        "`/api/v1/auth/token/` (trailing slash)."
    ),
    request=TokenObtainInputSerializer,
    responses={200: TokenPairSerializer, **error_responses(400, 401, 413, 415, 429)},
)
class TokenObtainApi(TokenObtainPairView):
    serializer_class = TokenObtainInputSerializer
    throttle_classes = [SettingsScopedThrottle]
    throttle_scope = "auth"


@extend_schema(
    description=(
        "Exchange a refresh token for a new access token and a new refresh token; "
        "the old refresh token is blacklisted (rotation). A token issued before a "
        'password change or a "log out everywhere" is refused. Also served at '
        "`/api/v1/auth/token/refresh/` (trailing slash)."
    ),
    request=TokenRefreshInputSerializer,
    responses={200: TokenPairSerializer, **error_responses(400, 401, 413, 415, 429)},
)
class TokenRefreshApi(TokenRefreshView):
    serializer_class = TokenRefreshInputSerializer
    throttle_classes = [SettingsScopedThrottle]
    throttle_scope = "auth"


# The old spelling with a trailing slash keeps working, out of the schema so
# clients generated from it use the one spelling.
@extend_schema(exclude=True)
class TokenObtainSlashApi(TokenObtainApi):
    pass


@extend_schema(exclude=True)
class TokenRefreshSlashApi(TokenRefreshApi):
    pass
