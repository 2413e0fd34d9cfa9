"""JWT endpoints (simplejwt), throttled: a password guesser gets 429s, not answers."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from healing.api.schema import error_responses
from healing.api.throttles import SettingsScopedThrottle


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField(help_text="JWT access token: `Authorization: Bearer <access>`.")
    refresh = serializers.CharField(help_text="JWT refresh token (rotated on each refresh).")

    class Meta:
        ref_name = "TokenPair"


@extend_schema(
    description=(
        "Exchange a username and password for an access token (short-lived) and a "
        "refresh token. Inactive users are refused."
    ),
    responses={200: TokenPairSerializer, **error_responses(400, 401, 413, 415, 429)},
)
class TokenObtainApi(TokenObtainPairView):
    throttle_classes = [SettingsScopedThrottle]
    throttle_scope = "auth"


@extend_schema(
    description=(
        "Exchange a refresh token for a new access token and a new refresh token; "
        "the old refresh token is blacklisted (rotation)."
    ),
    responses={200: TokenPairSerializer, **error_responses(400, 401, 413, 415, 429)},
)
class TokenRefreshApi(TokenRefreshView):
    throttle_classes = [SettingsScopedThrottle]
    throttle_scope = "auth"
