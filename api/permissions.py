"""The roles and the role matrix of issue 7, as permission classes (docs/DECISIONS.md "Roles").

| endpoint                                       | ADMIN | OPERATIONS | VIEWER |
|------------------------------------------------|-------|------------|--------|
| stuck-orders, healing-actions, cycles,         |  yes  |    yes     |   no   |
| notifications, rules (read); heal, run-cycle   |       |            |        |
| acknowledge, resolve                           |  yes  |     no     |   no   |
| statistics, kpis                               |  yes  |    yes     |  yes   |

Anonymous callers get 401 (DRF turns a refused permission into 401 when no
authenticator succeeded); authenticated users without the role get 403.
A role is a Django group of that name (``orders.roles`` creates them).
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission

ADMIN = "ADMIN"
OPERATIONS = "OPERATIONS"
VIEWER = "VIEWER"
ROLES = (ADMIN, OPERATIONS, VIEWER)


# The role names read with the user (api.authentication), so a request asks
# the database for its user's groups once, not again for the permission.
_ROLE_NAMES = "_role_names"


def roles_remember(user: Any, names: set[str]) -> None:
    """Keep the names of ``user``'s role groups on it, read in the user's query."""
    setattr(user, _ROLE_NAMES, frozenset(names))


def user_role(user: Any) -> str | None:
    """The strongest role a user holds; superusers are ADMIN."""
    if not user or not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return ADMIN
    names = getattr(user, _ROLE_NAMES, None)
    if names is None:
        names = {group.name for group in user.groups.all()}
    for role in ROLES:
        if role in names:
            return role
    return None


class RolePermission(BasePermission):
    roles: tuple[str, ...] = ()
    message = "Your role may not do this."

    def has_permission(self, request: Any, view: Any) -> bool:
        role = user_role(request.user)
        if role is None:
            return False
        if role not in self.roles:
            self.message = f"Role {role} may not do this; it needs {' or '.join(self.roles)}."
            return False
        return True


class IsAdmin(RolePermission):
    """ADMIN only: acknowledge and resolve notifications."""

    roles = (ADMIN,)


class IsOperator(RolePermission):
    """ADMIN or OPERATIONS: read the healing state, trigger healing."""

    roles = (ADMIN, OPERATIONS)


class IsViewer(RolePermission):
    """Any role: statistics and KPIs."""

    roles = (ADMIN, OPERATIONS, VIEWER)


def roles_of(view: Any) -> tuple[str, ...]:
    roles: tuple[str, ...] = ()
    for permission in getattr(view, "permission_classes", ()):
        roles += tuple(r for r in getattr(permission, "roles", ()) if r not in roles)
    return roles
