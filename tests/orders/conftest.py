"""Clients of the two edges: a vendor holding an API key, a MARKETPLACE service account."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from orders.credentials import vendor_credentials_issue
from orders.roles import MARKETPLACE, role_user_create


class VendorClient(APIClient):
    """An APIClient that also knows its vendor's webhook signing secret."""

    webhook_secret: str


@pytest.fixture
def vendor_client(db, api_defaults):
    """``vendor_client(vendor)``: an APIClient sending that vendor's fresh API key."""

    def make(vendor) -> VendorClient:
        issued = vendor_credentials_issue(vendor=vendor, rotate=hasattr(vendor, "credential"))
        client = VendorClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {issued.api_key}")
        client.webhook_secret = issued.webhook_secret
        return client

    return make


@pytest.fixture
def marketplace_user(db):
    from tests.api.helpers import PASSWORD

    return role_user_create(username="marketplace-svc", password=PASSWORD, role=MARKETPLACE)[0]


@pytest.fixture
def marketplace_api(marketplace_user, api_defaults) -> APIClient:
    from tests.api.helpers import bearer_client

    return bearer_client(marketplace_user)
