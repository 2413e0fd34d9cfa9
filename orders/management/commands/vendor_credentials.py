"""Issue or rotate a vendor's API key and webhook signing secret.

    python manage.py vendor_credentials --vendor ID [--rotate]

Prints one JSON line ``{"vendor_id": ..., "api_key": "...", "webhook_secret": "whsec_..."}``.
The API key is stored hashed and shown only here, once. ``--rotate`` issues
new ones; the previous key and secret stay valid for VENDOR_SECRET_GRACE_SECONDS.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from orders.credentials import vendor_credentials_issue
from orders.errors import DomainError
from orders.models import Vendor


class Command(BaseCommand):
    help = "Issue (or --rotate) a vendor's API key and webhook signing secret; prints JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--vendor", type=int, required=True, help="The vendor's id.")
        parser.add_argument(
            "--rotate",
            action="store_true",
            help="Replace existing credentials (the previous ones last the grace period).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        vendor = Vendor.objects.filter(pk=options["vendor"]).first()
        if vendor is None:
            raise CommandError(f"no vendor with id {options['vendor']}")
        try:
            issued = vendor_credentials_issue(vendor=vendor, rotate=options["rotate"])
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(json.dumps(issued.as_dict()))
