"""ADMIN rotates a vendor's credentials from the admin; OPERATIONS cannot (issue 14)."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.sites import AdminSite
from django.contrib.messages.storage.fallback import FallbackStorage
from django.test import RequestFactory

from orders.admin_credentials import vendor_credentials_rotate
from orders.credentials import vendor_credentials_issue, vendor_for_api_key
from orders.models import Vendor
from tests.factories import VendorFactory

pytestmark = pytest.mark.django_db


class _Admin:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def message_user(self, request, message, level=None) -> None:
        self.messages.append(message)


def test_rotate_shows_the_new_credentials_once_and_they_work():
    vendor = VendorFactory()
    old = vendor_credentials_issue(vendor=vendor)
    modeladmin = _Admin()
    request = RequestFactory().post("/")
    vendor_credentials_rotate(modeladmin, request, Vendor.objects.filter(pk=vendor.pk))
    (message,) = modeladmin.messages
    issued = json.loads(message[message.index("{") :])
    assert issued["vendor_id"] == vendor.pk
    assert issued["api_key"] != old.api_key
    assert vendor_for_api_key(key=issued["api_key"]) == vendor


@pytest.mark.parametrize(("role", "allowed"), [("ADMIN", True), ("OPERATIONS", False)])
def test_only_admin_gets_the_action(make_user, role, allowed):
    from django.contrib import admin as django_admin

    class VendorAdmin(django_admin.ModelAdmin):
        actions = [vendor_credentials_rotate]

    model_admin = VendorAdmin(Vendor, AdminSite())
    request = RequestFactory().get("/admin/orders/vendor/")
    request.user = make_user(role)
    request.session = {}
    request._messages = FallbackStorage(request)
    assert ("vendor_credentials_rotate" in model_admin.get_actions(request)) is allowed
