"""OpenAPI pieces of the vendor and order APIs that the shared ``api.schema`` lacks."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse

from api.schema import ErrorSerializer
from orders.idempotency import MAX_KEY_LENGTH

# What orders.idempotency accepts, as a schema (issue 20: a key of any string
# was documented, so generated keys with control characters were 400s):
# printable ASCII, not only spaces, at most MAX_KEY_LENGTH characters.
IDEMPOTENCY_KEY_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_KEY_LENGTH,
    "pattern": "^[ -~]*[!-~][ -~]*$",
}


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
