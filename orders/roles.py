"""The roles (docs/DECISIONS.md "Roles"), as Django groups with their permissions.

Three staff roles (ADMIN, OPERATIONS, VIEWER) and the marketplace's service
accounts (MARKETPLACE: the order API only, no admin, no healing API).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction

from api.permissions import ADMIN, OPERATIONS, ROLES, VIEWER, user_role

# The role names and "which role does this user hold" live with the API's
# permission classes (api.permissions); the groups behind them are made here.
__all__ = [
    "ACCOUNT_ROLES",
    "ADMIN",
    "MARKETPLACE",
    "OPERATIONS",
    "ROLES",
    "VIEWER",
    "role_groups_ensure",
    "role_user_create",
    "user_role",
]

# The fourth group (issue 14): creates and cancels orders under /api/v1/orders.
MARKETPLACE = "MARKETPLACE"
# Every role a user can be given (``user_role`` ranks the staff ones only).
ACCOUNT_ROLES = (*ROLES, MARKETPLACE)

# Apps whose admin ADMIN may change and OPERATIONS may only view.
_MANAGED_APPS = ("orders", "healing", "notifications", "django_celery_beat", "axes")


def role_groups_ensure() -> dict[str, Group]:
    """Create the groups and give ADMIN all permissions and OPERATIONS view ones."""
    groups = {name: Group.objects.get_or_create(name=name)[0] for name in ACCOUNT_ROLES}
    managed = Permission.objects.filter(content_type__app_label__in=_MANAGED_APPS)
    groups[ADMIN].permissions.set(managed)
    groups[OPERATIONS].permissions.set(managed.filter(codename__startswith="view_"))
    groups[VIEWER].permissions.clear()
    groups[MARKETPLACE].permissions.clear()
    return groups


def role_user_create(*, username: str, password: str, role: str) -> tuple[Any, bool]:
    """Idempotent: creates the user or updates its password and role."""
    if role not in ACCOUNT_ROLES:
        raise ValueError(f"unknown role {role!r}")
    user_model = get_user_model()
    with transaction.atomic():
        groups = role_groups_ensure()
        user, created = user_model.objects.get_or_create(username=username)
        user.set_password(password)
        # ADMIN and OPERATIONS use the Django admin (OPERATIONS read-only).
        user.is_staff = role in (ADMIN, OPERATIONS)
        user.is_active = True
        user.save(update_fields=["password", "is_staff", "is_active"])
        user.groups.set([groups[role]])
    return user, created
