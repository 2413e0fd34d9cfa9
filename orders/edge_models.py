"""The marketplace's two edges: vendor credentials and idempotency keys (issue 14).

Imported by ``orders.models`` so they belong to the ``orders`` app.
"""

from __future__ import annotations

from django.db import models
from rest_framework_api_key.models import AbstractAPIKey


class VendorAPIKey(AbstractAPIKey):
    """A vendor's API key, hashed by djangorestframework-api-key (shown once).

    Rotation gives the previous key an ``expiry_date`` of now + the grace
    period, so a vendor can roll over without downtime; ``revoked`` ends a key
    at once.
    """

    vendor = models.ForeignKey("orders.Vendor", on_delete=models.CASCADE, related_name="api_keys")

    class Meta(AbstractAPIKey.Meta):
        db_table = "vendor_api_keys"
        verbose_name = "vendor API key"
        verbose_name_plural = "vendor API keys"


class VendorCredential(models.Model):
    """A vendor's webhook signing secret (``whsec_`` + base64), and the one before it.

    Kept readable (we sign with it); the previous secret still signs every
    message until ``previous_valid_until`` (``VENDOR_SECRET_GRACE_SECONDS``
    after a rotation), as Standard Webhooks' multiple signatures allow.
    """

    vendor = models.OneToOneField(
        "orders.Vendor", on_delete=models.CASCADE, primary_key=True, related_name="credential"
    )
    webhook_secret = models.CharField(max_length=100)
    previous_webhook_secret = models.CharField(max_length=100, blank=True)
    previous_valid_until = models.DateTimeField(null=True, blank=True)
    rotated_at = models.DateTimeField()

    class Meta:
        db_table = "vendor_credentials"

    def __str__(self) -> str:
        return f"Credentials of vendor {self.vendor_id}"


class IdempotencyKey(models.Model):
    """One ``Idempotency-Key`` of one credential, with the first response to replay.

    The unique (owner, key) pair is the lock: the first request inserts the
    row (no response yet) in its own transaction, so a concurrent duplicate on
    any web worker finds it and waits or replays instead of acting twice.
    """

    # "vendor:<id>" or "user:<id>": a key is scoped to the credential that sent it.
    owner = models.CharField(max_length=64)
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        db_table = "idempotency_keys"
        constraints = [
            models.UniqueConstraint(fields=["owner", "key"], name="idempotency_key_per_owner")
        ]
        indexes = [models.Index(fields=["expires_at"], name="idempotency_expiry_idx")]

    def __str__(self) -> str:
        return f"{self.owner} {self.key}"
