"""schemathesis over the vendor and order APIs (issue 14), as tests/api/test_schemathesis.py.

Vendor operations run with a vendor's API key, order operations with a
MARKETPLACE service account's JWT. No 5xx; every answer matches the
documented status codes, content type and schema.
"""

from __future__ import annotations

import pytest
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from orders.credentials import vendor_credentials_issue
from orders.roles import MARKETPLACE
from tests.api.test_schemathesis import _fuzz, _keep_test_connection  # noqa: F401
from tests.factories import BuyerFactory, OrderFactory, VendorFactory

EDGE_PREFIXES = ("/api/v1/vendor/", "/api/v1/orders")


@pytest.fixture
def edge_schema(db, _keep_test_connection, rules, make_user):  # noqa: F811
    import schemathesis

    from config.wsgi import application

    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


@pytest.fixture
def edge_headers(make_user) -> dict[str, dict[str, str]]:
    from django.contrib.auth.models import Group
    from rest_framework_simplejwt.tokens import RefreshToken

    vendor = VendorFactory()
    BuyerFactory()
    for status in ("PENDING", "CONFIRMED", "ACCEPTED", "PROCESSING", "SHIPPED"):
        OrderFactory(vendor=vendor, status=status)
    key = vendor_credentials_issue(vendor=vendor).api_key
    user = make_user(None, "fuzz-marketplace")
    user.groups.add(Group.objects.get_or_create(name=MARKETPLACE)[0])
    token = str(RefreshToken.for_user(user).access_token)
    return {
        "vendor": {"Authorization": f"Api-Key {key}"},
        "orders": {"Authorization": f"Bearer {token}"},
    }


@pytest.mark.timeout(900)
def test_edges_match_their_schema(edge_schema, edge_headers):
    failures: list[str] = []
    operations = 0
    for result in edge_schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith(EDGE_PREFIXES):
            continue
        operations += 1
        headers = edge_headers[
            "vendor" if operation.path.startswith("/api/v1/vendor/") else "orders"
        ]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, headers)
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE, operation.label
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label} [{mode.value}]: {exc}"[:3000])
    assert operations == 11  # vendor: list, detail, 6 actions; orders: create, get, cancel
    assert not failures, "\n\n".join(failures)


def test_the_two_apis_are_tagged_apart_with_examples(client):
    schema = client.get("/api/schema/?format=json").json()
    tags = {
        path: {tag for operation in item.values() for tag in operation.get("tags", [])}
        for path, item in schema["paths"].items()
        if path.startswith(EDGE_PREFIXES)
    }
    assert len(tags) == 11
    for path, found in tags.items():
        assert found == ({"vendor"} if path.startswith("/api/v1/vendor/") else {"orders"}), path
    create = schema["paths"]["/api/v1/orders"]["post"]
    assert create["requestBody"]["content"]["application/json"]["examples"]
    assert "vendorApiKey" in schema["components"]["securitySchemes"]
