"""Start Flower with basic auth from the environment.

``FLOWER_BASIC_AUTH`` holds ``user:password`` pairs separated by commas.
Without it Flower refuses to start, unless ``FLOWER_ALLOW_UNAUTHENTICATED``
is true (a deliberate choice for a private network).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Run Flower (Celery monitoring) behind basic auth taken from FLOWER_BASIC_AUTH."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", default=os.environ.get("FLOWER_PORT", "5555"))
        parser.add_argument("--address", default=os.environ.get("FLOWER_ADDRESS", "127.0.0.1"))
        parser.add_argument("--dry-run", action="store_true", help="Print the command only.")

    def handle(self, *args: Any, port: str, address: str, dry_run: bool, **opts: Any) -> None:
        credentials = os.environ.get("FLOWER_BASIC_AUTH", "").strip()
        allow_open = os.environ.get("FLOWER_ALLOW_UNAUTHENTICATED", "").lower() in {
            "1",
            "true",
            "yes",
        }
        if credentials:
            pairs = [pair for pair in credentials.split(",") if pair]
            if not all(":" in pair and pair.split(":", 1)[1] for pair in pairs):
                raise CommandError("FLOWER_BASIC_AUTH must be user:password[,user:password]")
        elif not allow_open:
            raise CommandError(
                "refusing to start Flower without credentials: set FLOWER_BASIC_AUTH=user:password "
                "(or FLOWER_ALLOW_UNAUTHENTICATED=true on a private network)"
            )
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "flower",
            f"--port={port}",
            f"--address={address}",
        ]
        if credentials:
            argv.append(f"--basic-auth={credentials}")
        if dry_run:
            shown = [a if not a.startswith("--basic-auth=") else "--basic-auth=***" for a in argv]
            self.stdout.write(" ".join(shown))
            return
        os.execv(sys.executable, argv)  # noqa: S606 - replaces this process with Flower
