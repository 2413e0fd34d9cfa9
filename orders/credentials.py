"""Vendor credentials: an API key (hashed, shown once) and a webhook signing secret.

The key handling is djangorestframework-api-key's; the secret is Standard
Webhooks' ``whsec_`` + base64 of 32 random bytes. Rotation keeps the previous
key and secret usable for ``VENDOR_SECRET_GRACE_SECONDS`` so a vendor can roll
over without missing a message or a call.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orders.errors import DomainError
from orders.models import Vendor, VendorAPIKey, VendorCredential

SECRET_PREFIX = "whsec_"


class CredentialsExist(DomainError):
    code = "credentials_exist"
    http_status = 409


@dataclass(frozen=True)
class IssuedCredentials:
    """What a vendor is told once: the plain API key and the current secret."""

    vendor_id: int
    api_key: str
    webhook_secret: str

    def as_dict(self) -> dict[str, object]:
        return {
            "vendor_id": self.vendor_id,
            "api_key": self.api_key,
            "webhook_secret": self.webhook_secret,
        }


def webhook_secret_generate() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _grace() -> timedelta:
    return timedelta(seconds=settings.VENDOR_SECRET_GRACE_SECONDS)


def vendor_credentials_issue(
    *, vendor: Vendor, rotate: bool = False, now: datetime | None = None
) -> IssuedCredentials:
    """Give ``vendor`` a new API key and signing secret.

    A vendor that already has credentials gets new ones only with
    ``rotate=True`` (its plain API key cannot be shown again): the previous
    keys then expire after the grace period, and the previous secret keeps
    signing until then.
    """
    now = now or timezone.now()
    with transaction.atomic():
        vendor = Vendor.objects.select_for_update().get(pk=vendor.pk)
        credential = VendorCredential.objects.filter(vendor=vendor).first()
        if credential is not None and not rotate:
            raise CredentialsExist(
                f"vendor {vendor.pk} already has credentials; rotate to issue new ones "
                "(an API key is shown only once)",
                field="vendor",
            )
        secret = webhook_secret_generate()
        if credential is None:
            VendorCredential.objects.create(vendor=vendor, webhook_secret=secret, rotated_at=now)
        else:
            credential.previous_webhook_secret = credential.webhook_secret
            credential.previous_valid_until = now + _grace()
            credential.webhook_secret = secret
            credential.rotated_at = now
            credential.save(
                update_fields=[
                    "previous_webhook_secret",
                    "previous_valid_until",
                    "webhook_secret",
                    "rotated_at",
                ]
            )
            # Keys already expiring keep their earlier end.
            VendorAPIKey.objects.filter(
                vendor=vendor, revoked=False, expiry_date__isnull=True
            ).update(expiry_date=now + _grace())
        _, api_key = VendorAPIKey.objects.create_key(
            vendor=vendor, name=f"vendor {vendor.pk} {now:%Y-%m-%d %H:%M}"
        )
    return IssuedCredentials(vendor_id=vendor.pk, api_key=api_key, webhook_secret=secret)


def vendor_api_keys_revoke(*, vendor: Vendor) -> int:
    """End every key of ``vendor`` at once (a leaked key)."""
    return VendorAPIKey.objects.filter(vendor=vendor, revoked=False).update(revoked=True)


def vendor_signing_secrets(*, vendor_id: int, now: datetime | None = None) -> list[str]:
    """The secrets a message to ``vendor_id`` is signed with, current first."""
    now = now or timezone.now()
    credential = VendorCredential.objects.filter(vendor_id=vendor_id).first()
    if credential is None:
        return []
    found = [credential.webhook_secret]
    if (
        credential.previous_webhook_secret
        and credential.previous_valid_until is not None
        and credential.previous_valid_until > now
    ):
        found.append(credential.previous_webhook_secret)
    return found


def vendor_for_api_key(*, key: str) -> Vendor | None:
    """The active vendor holding this usable (not revoked, not expired) key."""
    try:
        api_key = cast(VendorAPIKey, VendorAPIKey.objects.get_from_key(key))
    except VendorAPIKey.DoesNotExist:
        return None
    if api_key.has_expired or not api_key.vendor.is_active:
        return None
    return api_key.vendor
