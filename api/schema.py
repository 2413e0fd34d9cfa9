"""OpenAPI: role requirements in every description, one error envelope everywhere."""

from __future__ import annotations

from typing import Any

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers

from api.inputs import MAX_ID
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


# --- The schema states the constraints the server enforces (issue 20) ---------
#
# A request the schema calls valid must not be a 400 (schemathesis' ST202), and
# one it calls invalid must not be accepted (ST201). Two constraints are true of
# every operation and are stated here once rather than per view.


class StrictInputScheme(OpenApiSerializerExtension):
    """A body read by ``api.inputs.StrictKeysMixin`` refuses undeclared keys:
    its schema says so (``additionalProperties: false``). A serializer's
    ``openapi_extra`` (a dict) is merged in: the rules across fields that
    OpenAPI 3.0 can state (``anyOf`` of required fields)."""

    target_class = "api.inputs.StrictKeysMixin"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["additionalProperties"] = False
        schema.update(getattr(self.target, "openapi_extra", {}))
        serializer_class = self.target if isinstance(self.target, type) else type(self.target)
        if not serializer_class.__dict__.get("__doc__"):
            # Not the mixin's docstring on every body that has none of its own.
            schema.pop("description", None)
        return schema


# Every id in a path is read by ``api.inputs.path_id`` or a Django ``<int:>``
# converter: an integer, and one PostgreSQL's bigint can hold (a larger or
# non-positive one names no row: 404).
PATH_ID_SCHEMA = {"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_ID}


# DRF's CharField refuses NUL characters (a 400): a free-text input says so.
NUL_FREE = "^[^\\u0000]*$"


def _nul_free(schema: dict[str, Any]) -> None:
    if schema.get("type") == "string" and not {"format", "enum", "pattern"} & set(schema):
        schema["pattern"] = NUL_FREE


def _request_components(paths: dict[str, Any]) -> set[str]:
    names = set()
    for operations in paths.values():
        for operation in operations.values():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                ref = media.get("schema", {}).get("$ref", "")
                if ref.startswith("#/components/schemas/"):
                    names.add(ref.rsplit("/", 1)[1])
    return names


def postprocess_nul_free(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular post-processing hook: free-text query parameters and
    request-body fields (strings with no format, enum or pattern) exclude NUL."""
    paths = result.get("paths", {})
    for operations in paths.values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query":
                    _nul_free(parameter.get("schema", {}))
    components = result.get("components", {}).get("schemas", {})
    for name in _request_components(paths):
        for prop in components.get(name, {}).get("properties", {}).values():
            _nul_free(prop)
            if prop.get("type") == "array":
                _nul_free(prop.get("items", {}))
    return result


def postprocess_path_ids(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular post-processing hook: path parameters named ``*_id`` are ids.

    (``re_path`` routes and ``<str:>`` converters that ``path_id`` reads are
    otherwise documented as any string, so generated strings were 400s.)
    """
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter["name"].endswith("_id"):
                    parameter["schema"] = dict(PATH_ID_SCHEMA)
    return result
