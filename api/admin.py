"""Django admin: "log out everywhere" on the user list."""

from __future__ import annotations

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


# Extend whichever user admin is registered (django.contrib.auth's by default).
user_admin_class: type[admin.ModelAdmin] = UserAdmin
if admin.site.is_registered(User):
    user_admin_class = type(admin.site.get_model_admin(User))
    admin.site.unregister(User)


class ApiUserAdmin(user_admin_class):  # type: ignore[valid-type,misc]
    actions = [*(user_admin_class.actions or []), tokens_revoke_action]


admin.site.register(User, ApiUserAdmin)
