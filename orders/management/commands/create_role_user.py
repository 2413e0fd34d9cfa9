from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from orders.roles import ROLES, role_user_create


class Command(BaseCommand):
    help = "Create or update a user with one of the roles ADMIN, OPERATIONS, VIEWER."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--role", required=True, help="|".join(ROLES))

    def handle(self, *args: Any, username: str, password: str, role: str, **opts: Any) -> None:
        if role not in ROLES:
            raise CommandError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        if not username.strip():
            raise CommandError("username must not be empty")
        user, created = role_user_create(username=username, password=password, role=role)
        self.stdout.write(f"{'created' if created else 'updated'} {role} user {user.username}")
