"""``Idempotency-Key`` on the POSTs of the vendor and order APIs, Stripe-style.

The same key with the same body replays the first response (status and
body, with ``Idempotent-Replayed: true``) and has no second effect; the same
key with another body (or another endpoint) is a 422; a key lives
``IDEMPOTENCY_KEY_TTL_SECONDS``. Keys are scoped to the credential that sent
them and stored in PostgreSQL, so a retry landing on another web worker is
caught too.

Exactly once, without a lock service: the key row is inserted and the
request's effect written in ONE transaction. A concurrent request with the
same key blocks on the unique index until that transaction ends, then finds
the stored response (commit) or inserts the key itself (rollback). A crash
rolls back effect and key together. A 5xx is not stored: the client may retry.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import OperationalError, connection, transaction
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from orders.errors import DomainError
from orders.models import IdempotencyKey

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


class IdempotencyKeyMissing(DomainError):
    code = "idempotency_key_required"
    http_status = 400


class IdempotencyKeyInvalid(DomainError):
    code = "idempotency_key_invalid"
    http_status = 400


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"
    http_status = 422


class IdempotencyKeyInProgress(DomainError):
    code = "idempotency_key_in_progress"
    http_status = 409


def request_fingerprint(*, method: str, path: str, data: Any) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def credential_owner(user: Any) -> str:
    owner = getattr(user, "credential_owner", None)
    return owner if owner else f"user:{user.pk}"


def _claim(*, owner: str, key: str, request: Request, digest: str, now: datetime) -> int | None:
    """Insert the key row; None when another request holds (or held) the key.

    Waits (up to IDEMPOTENCY_WAIT_SECONDS on PostgreSQL) while a concurrent
    request with the key is still running.
    """
    table = IdempotencyKey._meta.db_table
    expires = now + timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT set_config('lock_timeout', %s, true)",
                [f"{int(settings.IDEMPOTENCY_WAIT_SECONDS * 1000)}ms"],
            )
        # An expired key may be used again.
        cursor.execute(
            f"DELETE FROM {table} WHERE owner = %s AND key = %s AND expires_at <= %s",  # noqa: S608
            [owner, key, now],
        )
        cursor.execute(
            f"INSERT INTO {table} (owner, key, method, path, request_hash, created_at, "  # noqa: S608
            "expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (owner, key) DO NOTHING RETURNING id",
            [owner, key, request.method, request.path[:255], digest, now, expires],
        )
        row = cursor.fetchone()
        if connection.vendor == "postgresql":
            cursor.execute("SELECT set_config('lock_timeout', '0', true)")
    return row[0] if row else None


def _replay(*, owner: str, key: str, digest: str) -> Response:
    stored = IdempotencyKey.objects.get(owner=owner, key=key)
    if stored.request_hash != digest:
        raise IdempotencyKeyReused(
            f"{HEADER} {key!r} was used for another request; use a new key for a new request",
            field=HEADER,
        )
    if stored.response_status is None:  # pragma: no cover - only while a request is running
        raise IdempotencyKeyInProgress(f"a request with {HEADER} {key!r} is in progress")
    response = Response(json.loads(stored.response_body or "null"), status=stored.response_status)
    response["Idempotent-Replayed"] = "true"
    return response


def idempotent_response(
    *, view: Any, request: Request, required: bool, respond: Callable[[], Response]
) -> Response:
    key = request.headers.get(HEADER)
    if key is None:
        if required:
            raise IdempotencyKeyMissing(f"this endpoint needs an {HEADER} header", field=HEADER)
        return respond()
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise IdempotencyKeyInvalid(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters", field=HEADER
        )
    owner = credential_owner(request.user)
    digest = request_fingerprint(method=request.method or "", path=request.path, data=request.data)
    now = timezone.now()
    with transaction.atomic():
        try:
            with transaction.atomic():
                claimed = _claim(owner=owner, key=key, request=request, digest=digest, now=now)
        except OperationalError as exc:  # lock_timeout: the other request is still running
            raise IdempotencyKeyInProgress(
                f"a request with {HEADER} {key!r} is still in progress; retry later",
                field=HEADER,
            ) from exc
        if claimed is None:
            return _replay(owner=owner, key=key, digest=digest)
        try:
            with transaction.atomic():
                response = respond()
        except Exception as exc:
            response = view.handle_exception(exc)
        if response.status_code >= 500:
            # Not a result worth replaying: forget the key with the rest.
            transaction.set_rollback(True)
            return response
        # Stored as JSON text (a JSON string value): escaped, so a NUL or a
        # lone surrogate echoed in an error message cannot break jsonb.
        IdempotencyKey.objects.filter(pk=claimed).update(
            response_status=response.status_code,
            response_body=json.dumps(response.data, cls=DjangoJSONEncoder),
        )
    return response


def idempotent(*, required: bool = False) -> Callable[[Callable[..., Response]], Any]:
    """Decorate an APIView's ``post``: it runs at most once per Idempotency-Key."""

    def decorate(post: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(post)
        def wrapper(self: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
            return idempotent_response(
                view=self,
                request=request,
                required=required,
                respond=lambda: post(self, request, *args, **kwargs),
            )

        return wrapper

    return decorate


def idempotency_keys_purge(*, now: datetime | None = None) -> int:
    """Delete expired keys (beat or a command may call it; expired keys are reused anyway)."""
    now = now or timezone.now()
    deleted, _ = IdempotencyKey.objects.filter(expires_at__lte=now).delete()
    return deleted
