"""Django admin: "log out everywhere" and "deactivate" on the user list.

Users are deactivated, never deleted, once they have acted on anything kept
for the audit trail (an order's status history refuses to lose its actor): the
delete page then lists what protects them and says to deactivate instead.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from api.revocation import user_tokens_revoke

User = get_user_model()


@admin.action(description="Log out everywhere (revoke every API token)")
def tokens_revoke_action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet):
    for user in queryset:
        user_tokens_revoke(user=user)
    modeladmin.message_user(
        request, f"Revoked the API tokens of {queryset.count()} user(s).", messages.SUCCESS
    )


@admin.action(description="Deactivate selected users (they keep their audit trail)")
def users_deactivate_action(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> None:
    users = list(queryset.filter(is_active=True))
    for user in users:
        user.is_active = False
        user.save(update_fields=["is_active"])
        user_tokens_revoke(user=user)  # logged out everywhere, at once
    modeladmin.message_user(request, f"Deactivated {len(users)} user(s).", messages.SUCCESS)


DEACTIVATE_INSTEAD = (
    "Users who acted on orders are kept for the audit trail and cannot be deleted. "
    "Deactivate them instead: untick 'Active' on the user's page, or use the "
    "'Deactivate selected users' action on the user list."
)


# Extend whichever user admin is registered (django.contrib.auth's by default).
user_admin_class: type[admin.ModelAdmin] = UserAdmin
if admin.site.is_registered(User):
    user_admin_class = type(admin.site.get_model_admin(User))
    admin.site.unregister(User)


class ApiUserAdmin(user_admin_class):  # type: ignore[valid-type,misc]
    actions = [*(user_admin_class.actions or []), tokens_revoke_action, users_deactivate_action]

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        """Django's answer (the delete page and the bulk action refuse while
        anything PROTECTs a user), plus what to do instead."""
        answer = super().get_deleted_objects(objs, request)
        if answer[3]:  # protected
            self.message_user(request, DEACTIVATE_INSTEAD, messages.WARNING)
        return answer


admin.site.register(User, ApiUserAdmin)
