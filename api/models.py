"""Token revocations: the one state the API keeps of its own."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class TokenRevocation(models.Model):
    """Every JWT of ``user`` issued before ``revoked_at`` is refused ("log out everywhere").

    One row per user, moved forward on each revocation; a password change needs
    no row (the tokens carry a hash of the password hash).
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="token_revocation",
    )
    revoked_at = models.DateTimeField()

    class Meta:
        db_table = "api_token_revocations"

    def __str__(self) -> str:
        return f"tokens of user {self.user_id} before {self.revoked_at.isoformat()}"
