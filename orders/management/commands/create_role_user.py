from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from orders.roles import ROLES, role_user_create


class Command(BaseCommand):
    help = (
        "Create or update a user with one of the roles ADMIN, OPERATIONS, VIEWER. "
        "The password must pass the project's password validators (AUTH_PASSWORD_VALIDATORS)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--role", required=True, help="|".join(ROLES))

    def handle(self, *args: Any, username: str, password: str, role: str, **opts: Any) -> None:
        if role not in ROLES:
            raise CommandError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        if not username.strip():
            raise CommandError("username must not be empty")
        self._password_check(username=username, password=password)
        user, created = role_user_create(username=username, password=password, role=role)
        self.stdout.write(f"{'created' if created else 'updated'} {role} user {user.username}")

    def _password_check(self, *, username: str, password: str) -> None:
        # The same validators as the admin's password forms; the unsaved user
        # lets the similarity check compare the password with the username.
        user = get_user_model()(username=username)
        try:
            validate_password(password, user=user)
        except ValidationError as exc:
            raise CommandError(f"password refused: {' '.join(exc.messages)}") from exc
