"""Revoking every token of a user, and asking whether a token was revoked.

simplejwt's blacklist covers refresh tokens only; access tokens are checked
against :class:`api.models.TokenRevocation` on every request (one indexed
primary-key read), so "log out everywhere" takes effect at once, not when
the last access token expires.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from api.models import TokenRevocation


@transaction.atomic
def user_tokens_revoke(*, user: Any, now: datetime | None = None) -> int:
    """Log ``user`` out everywhere: refuse every token issued until now.

    Returns how many outstanding refresh tokens were blacklisted.
    """
    now = now or timezone.now()
    TokenRevocation.objects.update_or_create(user=user, defaults={"revoked_at": now})
    outstanding = OutstandingToken.objects.filter(user=user, blacklistedtoken__isnull=True)
    rows = [BlacklistedToken(token=token) for token in outstanding]
    BlacklistedToken.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def revocation_remember(user: Any, revoked_at: Any) -> None:
    """Keep ``user``'s revocation time (None: none), read with the user, on it."""
    if isinstance(revoked_at, str):  # SQLite hands a raw column back as text
        revoked_at = parse_datetime(revoked_at)
        if revoked_at is not None and timezone.is_naive(revoked_at):
            revoked_at = timezone.make_aware(revoked_at, UTC)
    revocation = (
        None if revoked_at is None else TokenRevocation(user_id=user.pk, revoked_at=revoked_at)
    )
    type(user).token_revocation.related.set_cached_value(user, revocation)


def token_revoked(*, user: Any, issued_at: Any) -> bool:
    """Was a token of ``user`` issued at ``issued_at`` (the ``iat`` claim) revoked?

    Read from ``user`` when its revocation came with it (api.authentication,
    :func:`revocation_remember`), from the database otherwise.
    """
    related = type(user).token_revocation.related
    if related.is_cached(user):
        revocation = related.get_cached_value(user)
        revoked_at = revocation.revoked_at if revocation is not None else None
    else:
        revoked_at = (
            TokenRevocation.objects.filter(user_id=user.pk)
            .values_list("revoked_at", flat=True)
            .first()
        )
    if revoked_at is None:
        return False
    if not isinstance(issued_at, int | float):
        return True
    # ``iat`` has whole seconds: a token issued in the second of the revocation
    # is refused too, rather than one issued just before it being let through.
    return issued_at <= revoked_at.timestamp()
