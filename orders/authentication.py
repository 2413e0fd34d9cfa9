"""``Authorization: Api-Key <key>``: the vendor API's authentication.

Separate from staff JWT: a vendor is not a Django user. The authenticated
principal is a ``VendorClient`` (``request.user``) carrying the vendor; the
header is parsed by djangorestframework-api-key's ``KeyParser``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.permissions import BasePermission
from rest_framework_api_key.permissions import KeyParser

from api.permissions import ADMIN, user_role
from orders.credentials import vendor_for_api_key
from orders.models import Vendor
from orders.roles import MARKETPLACE


@dataclass(frozen=True)
class VendorClient:
    """The caller of the vendor API."""

    vendor: Vendor
    is_authenticated: bool = True
    is_active: bool = True
    is_superuser: bool = False
    is_staff: bool = False

    @property
    def pk(self) -> int:
        return self.vendor.pk

    @property
    def credential_owner(self) -> str:
        """The namespace of this caller's idempotency keys."""
        return f"vendor:{self.vendor.pk}"


class VendorApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = KeyParser.keyword

    def authenticate(self, request: Any) -> tuple[VendorClient, str] | None:
        key = KeyParser().get(request)
        if not key:
            return None
        vendor = vendor_for_api_key(key=key.strip())
        if vendor is None:
            raise exceptions.AuthenticationFailed("Unknown, expired or revoked API key.")
        return VendorClient(vendor=vendor), key

    def authenticate_header(self, request: Any) -> str:
        # A 401 (not 403) with this challenge when the key is missing or wrong.
        return self.keyword


class IsVendor(BasePermission):
    message = "The vendor API needs an `Authorization: Api-Key <key>` header."

    def has_permission(self, request: Any, view: Any) -> bool:
        return isinstance(request.user, VendorClient)


class IsMarketplace(BasePermission):
    """The marketplace's service accounts (group MARKETPLACE), or ADMIN."""

    message = "Only MARKETPLACE service accounts or ADMIN may use the order API."

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        if not user or not getattr(user, "is_authenticated", False) or not user.is_active:
            return False
        if isinstance(user, VendorClient):
            return False
        if user_role(user) == ADMIN:
            return True
        return user.groups.filter(name=MARKETPLACE).exists()


class VendorApiKeyScheme(OpenApiAuthenticationExtension):
    """OpenAPI: the vendor API's ``Authorization: Api-Key <key>`` security scheme."""

    target_class = "orders.authentication.VendorApiKeyAuthentication"
    name = "vendorApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`, from `manage.py vendor_credentials --vendor ID`.",
        }
