"""OpenAPI pieces of the vendor and order APIs that the shared ``api.schema`` lacks."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse

from api.schema import ErrorSerializer


def idempotency_errors() -> dict[int, OpenApiResponse]:
    """The answers an ``Idempotency-Key`` adds: 409 while the first request runs, 422
    when the key was used for another request."""
    return {
        409: OpenApiResponse(
            response=ErrorSerializer,
            description="Conflicts with the current state, or a request with this "
            "Idempotency-Key is still in progress.",
        ),
        422: OpenApiResponse(
            response=ErrorSerializer,
            description="This Idempotency-Key was used for a different request.",
        ),
    }
