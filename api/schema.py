"""OpenAPI: role requirements in every description, one error envelope everywhere."""

from __future__ import annotations

from typing import Any

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers

from api.permissions import roles_of


class JWTScheme(SimpleJWTScheme):
    """Our JWTAuthentication (api.authentication) is documented as simplejwt's: `jwtAuth`."""

    target_class = "api.authentication.JWTAuthentication"


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    field = serializers.CharField(allow_null=True)


class ErrorSerializer(serializers.Serializer):
    success = serializers.BooleanField(default=False)
    error = ErrorDetailSerializer()

    class Meta:
        ref_name = "Error"


# Every authenticated operation can answer these two.
AUTH_ERRORS = (401, 403)

_ERROR_TEXT = {
    400: "Invalid input: `error.field` names the parameter.",
    401: "No valid access token (missing, expired, tampered, or user inactive).",
    403: "Authenticated, but the role may not call this endpoint.",
    404: "No row with this id.",
    409: "The request conflicts with the current state (`error.message` says why).",
    413: "The body is larger than `DATA_UPLOAD_MAX_MEMORY_SIZE`.",
    415: "The body is not `application/json`.",
    429: "Too many requests: retry after the `Retry-After` header.",
    503: "A dependency (database, broker) is unavailable.",
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    return {
        code: OpenApiResponse(response=ErrorSerializer, description=_ERROR_TEXT[code])
        for code in statuses
    }


def seed_example(name: str, value: Any, *, request: bool = False) -> OpenApiExample:
    return OpenApiExample(
        name, value=value, request_only=request, response_only=not request, status_codes=["200"]
    )


class RoleAutoSchema(AutoSchema):
    """Appends the roles allowed by the view's permission classes to its description,
    and groups operations by area instead of by URL prefix."""

    def get_tags(self) -> list[str]:
        path = self.path
        if path.startswith("/api/v1/auth/"):
            return ["auth"]
        if path.startswith("/api/v1/self-healing/notifications"):
            return ["notifications"]
        if path.startswith(("/api/v1/self-healing/statistics", "/api/v1/self-healing/kpis")):
            return ["statistics"]
        if path.startswith("/api/v1/self-healing/"):
            return ["self-healing"]
        if path == "/api/v1/health":
            return ["health"]
        return super().get_tags()

    # drf-spectacular's signature (no arguments), not the DRF stub's ViewInspector one.
    def get_description(self) -> str:  # type: ignore[override]
        description = super().get_description() or ""
        roles = roles_of(self.view)
        if not roles:
            return description
        return f"{description}\n\n**Roles:** {', '.join(roles)}.".strip()
