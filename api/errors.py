"""One exception handler: every API error is ``{"success": false, "error": {...}}``.

Services raise ``DomainError`` subclasses (carrying code, HTTP status, message
and field); DRF raises its own ``APIException`` family. Both are mapped here,
so no view catches an exception to shape an error response. ``DomainError``
is defined here, not in an app, so this package needs no app to map it.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

logger = logging.getLogger("api")

# DRF's default codes, renamed where the default says less than it could.
_CODE_FOR_EXCEPTION: dict[type[exceptions.APIException], str] = {
    exceptions.ParseError: "malformed_request",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.Throttled: "throttled",
}


class _PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"


class DomainError(Exception):
    """A request the domain refuses (never retried): the base of every app's errors.

    ``code`` and ``http_status`` are per class; the message and the field it
    concerns (an API parameter name, or None) per instance.
    """

    code = "domain_error"
    http_status = 409

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ApiNotFound(DomainError):
    """An id in the path names no row."""

    code = "not_found"
    http_status = 404


class ApiInvalid(DomainError):
    """A value the API refuses before any service sees it (a path segment, say)."""

    code = "invalid"
    http_status = 400


def error_body(*, code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": message, "field": field}}


def _first_validation_error(detail: Any, prefix: str = "") -> tuple[str | None, str, str]:
    """(field path, message, code) of the first error in a DRF error tree."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "" if key in ("non_field_errors", "detail") else str(key)
            path = f"{prefix}.{name}" if prefix and name else (name or prefix)
            return _first_validation_error(value, path)
    if isinstance(detail, list):
        for index, value in enumerate(detail):
            if isinstance(value, dict | list):
                return _first_validation_error(value, f"{prefix}[{index}]" if prefix else prefix)
            return _first_validation_error(value, prefix)
    code = getattr(detail, "code", None) or "invalid"
    return (prefix or None), str(detail), str(code)


def _validation_message(field: str | None, message: str) -> str:
    return f"{field}: {message}" if field else message


def _as_drf_exception(exc: Exception) -> Exception:
    """Django's own exceptions as the DRF ones they mean; anything else as is."""
    if isinstance(exc, Http404):
        return exceptions.NotFound(str(exc) or "Not found.")
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied(str(exc) or None)
    if isinstance(exc, RequestDataTooBig):
        # Raised when something read request.body past DATA_UPLOAD_MAX_MEMORY_SIZE.
        return _PayloadTooLarge("The request body is too large.")
    if isinstance(exc, SuspiciousOperation):
        return exceptions.ParseError(str(exc) or "Bad request.")
    return exc


def _api_exception_answer(
    exc: exceptions.APIException, headers: dict[str, str]
) -> tuple[dict[str, Any], int]:
    """The body and status of a DRF exception; its auth and wait headers go in ``headers``."""
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    if getattr(exc, "wait", None) is not None:
        headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
    detail = exc.detail
    # simplejwt puts its message in a dict ({"detail": ..., "code": ..., "messages": ...}).
    if isinstance(detail, dict):
        code = str(detail.get("code") or exc.default_code)
        message = str(detail.get("detail") or exc.default_detail)
    else:
        own_code = str(getattr(detail, "code", "") or "")
        # A specific code the raiser chose (simplejwt's "no_active_account")
        # wins over the class's generic one.
        if own_code and own_code != exc.default_code:
            code = own_code
        else:
            code = _CODE_FOR_EXCEPTION.get(type(exc), own_code or "error")
        message = str(detail)
    return error_body(code=code, message=message), exc.status_code


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER for the whole project."""
    headers: dict[str, str] = {}
    exc = _as_drf_exception(exc)
    if isinstance(exc, DomainError):
        body = error_body(code=exc.code, message=exc.message, field=exc.field)
        http_status = exc.http_status
    elif isinstance(exc, exceptions.ValidationError):
        field, message, code = _first_validation_error(exc.detail)
        body = error_body(
            code="invalid" if code in ("invalid", "invalid_choice") else code,
            message=_validation_message(field, message),
            field=field,
        )
        http_status = status.HTTP_400_BAD_REQUEST
    elif isinstance(exc, exceptions.APIException):
        body, http_status = _api_exception_answer(exc, headers)
    elif isinstance(exc, OperationalError | InterfaceError):
        logger.exception("database unavailable while serving the API")
        body = error_body(
            code="service_unavailable", message="The database is unavailable; try again."
        )
        http_status = status.HTTP_503_SERVICE_UNAVAILABLE
        headers["Retry-After"] = "5"
    elif isinstance(exc, DatabaseError):
        # A value the database refused that validation let through is our bug,
        # but the caller still gets a JSON answer naming no internals.
        logger.exception("database refused an API request")
        body = error_body(code="server_error", message="The request could not be processed.")
        http_status = status.HTTP_500_INTERNAL_SERVER_ERROR
    else:
        logger.exception("unhandled error in the API")
        body = error_body(code="server_error", message="Internal server error.")
        http_status = status.HTTP_500_INTERNAL_SERVER_ERROR

    set_rollback()
    return Response(body, status=http_status, headers=headers)


@csrf_exempt  # it changes nothing; CSRF's HTML 403 must not hide the JSON 404
def json_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """A path under the API that no route matches: JSON, whatever DEBUG says."""
    return JsonResponse(
        error_body(code="not_found", message=f"No API endpoint at {request.path}."),
        status=404,
    )


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Project 404 (DEBUG off): JSON under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return json_not_found(request)
    return defaults.page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    """Project 500 (DEBUG off) for errors outside DRF's views: JSON under /api/."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            error_body(code="server_error", message="Internal server error."), status=500
        )
    return defaults.server_error(request)
