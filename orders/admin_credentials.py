"""The admin action that rotates vendors' credentials (issue 14).

Registers nothing itself: ``orders.admin.VendorAdmin`` lists it in ``actions``.
Only users who may change vendors (ADMIN) see it; OPERATIONS' admin is
read-only. The new API key and secret are shown once, in the page's message,
as the same JSON line ``manage.py vendor_credentials --rotate`` prints.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from orders.credentials import vendor_credentials_issue
from orders.models import Vendor

# Enough for a page of messages; rotating more at once belongs to the command.
MAX_VENDORS = 20


@admin.action(description="Rotate API key and webhook secret (shown once)", permissions=["change"])
def vendor_credentials_rotate(
    modeladmin: Any, request: HttpRequest, queryset: QuerySet[Vendor]
) -> None:
    vendors = list(queryset.order_by("pk")[: MAX_VENDORS + 1])
    if len(vendors) > MAX_VENDORS:
        modeladmin.message_user(
            request,
            f"Select at most {MAX_VENDORS} vendors (or use manage.py vendor_credentials).",
            level=messages.ERROR,
        )
        return
    for vendor in vendors:
        issued = vendor_credentials_issue(vendor=vendor, rotate=True)
        modeladmin.message_user(
            request,
            f"{vendor.name}: copy these now, they are not shown again: "
            f"{json.dumps(issued.as_dict())}",
            level=messages.WARNING,
        )
