from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone

from orders.credentials import (
    vendor_api_keys_revoke,
    vendor_credentials_issue,
    vendor_for_api_key,
    vendor_signing_secrets,
)
from orders.models import VendorAPIKey, VendorCredential
from tests.factories import VendorFactory

pytestmark = pytest.mark.django_db


def run(*args: str) -> dict:
    out = StringIO()
    call_command("vendor_credentials", *args, stdout=out)
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_command_prints_one_json_line_and_stores_the_key_hashed():
    vendor = VendorFactory()
    printed = run("--vendor", str(vendor.pk))
    assert set(printed) == {"vendor_id", "api_key", "webhook_secret"}
    assert printed["vendor_id"] == vendor.pk
    assert printed["webhook_secret"].startswith("whsec_")
    stored = VendorAPIKey.objects.get(vendor=vendor)
    assert printed["api_key"] not in (stored.hashed_key, stored.id)
    assert stored.hashed_key.startswith("sha512$$")
    assert vendor_for_api_key(key=printed["api_key"]) == vendor


def test_command_refuses_to_show_a_key_twice_without_rotate():
    vendor = VendorFactory()
    run("--vendor", str(vendor.pk))
    with pytest.raises(CommandError, match="rotate"):
        run("--vendor", str(vendor.pk))


def test_command_refuses_an_unknown_vendor():
    with pytest.raises(CommandError, match="no vendor"):
        run("--vendor", "999999")


def test_rotation_keeps_the_previous_key_and_secret_for_the_grace_period(settings):
    settings.VENDOR_SECRET_GRACE_SECONDS = 600
    vendor = VendorFactory()
    first = run("--vendor", str(vendor.pk))
    second = run("--vendor", str(vendor.pk), "--rotate")
    assert second["api_key"] != first["api_key"]
    assert second["webhook_secret"] != first["webhook_secret"]
    assert vendor_for_api_key(key=first["api_key"]) == vendor
    assert vendor_for_api_key(key=second["api_key"]) == vendor
    assert vendor_signing_secrets(vendor_id=vendor.pk) == [
        second["webhook_secret"],
        first["webhook_secret"],
    ]
    with time_machine.travel(timezone.now() + timedelta(seconds=601)):
        assert vendor_for_api_key(key=first["api_key"]) is None
        assert vendor_for_api_key(key=second["api_key"]) == vendor
        assert vendor_signing_secrets(vendor_id=vendor.pk) == [second["webhook_secret"]]


def test_revoked_unknown_and_inactive_vendor_keys_authenticate_nobody():
    vendor = VendorFactory()
    key = vendor_credentials_issue(vendor=vendor).api_key
    assert vendor_for_api_key(key="nope.nope") is None
    assert vendor_for_api_key(key=key + "x") is None
    vendor_api_keys_revoke(vendor=vendor)
    assert vendor_for_api_key(key=key) is None
    other = VendorFactory()
    other_key = vendor_credentials_issue(vendor=other).api_key
    type(other).objects.filter(pk=other.pk).update(is_active=False)
    assert vendor_for_api_key(key=other_key) is None
    assert VendorCredential.objects.count() == 2
