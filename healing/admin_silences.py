"""Silences in the admin (issue 18): created, changed, extended and expired
through healing.silences, so every edit leaves its audit row; the audit rows
are shown, never edited. The vendor circuit is shown read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from healing.silence_models import Silence, SilenceEvent
from healing.silences import (
    SilenceInvalid,
    SilenceSpec,
    silence_create,
    silence_expire,
    silence_is_active,
    silence_update,
)
from orders.models import VendorCircuit

SPEC_FIELDS = tuple(SilenceSpec.__dataclass_fields__)


class SilenceEventInline(admin.TabularInline):
    model = SilenceEvent
    extra = 0
    can_delete = False
    readonly_fields = ("created_at", "action", "actor", "snapshot")
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Silence)
class SilenceAdmin(admin.ModelAdmin):
    list_display = ("id", "vendor", "buyer", "status", "starts_at", "ends_at", "active", "owner")
    list_filter = ("status",)
    readonly_fields = ("owner", "created_at", "updated_at")
    inlines = [SilenceEventInline]
    actions = ["expire_now"]

    @admin.display(boolean=True)
    def active(self, obj: Silence) -> bool:
        from django.utils import timezone

        return silence_is_active(silence=obj, now=timezone.now())

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # expire it: the audit trail keeps every silence

    def save_model(self, request: HttpRequest, obj: Silence, form: Any, change: bool) -> None:
        values = {name: getattr(obj, name) for name in SPEC_FIELDS}
        values["recurrence_weekdays"] = tuple(values["recurrence_weekdays"] or ())
        try:
            if change:
                current = Silence.objects.get(pk=obj.pk)
                before = {name: getattr(current, name) for name in SPEC_FIELDS}
                before["recurrence_weekdays"] = tuple(before["recurrence_weekdays"] or ())
                changed = {n: values[n] for n in SPEC_FIELDS if values[n] != before[n]}
                saved = silence_update(silence_id=obj.pk, actor=request.user, changes=changed)
            else:
                saved = silence_create(spec=SilenceSpec(**values), owner=request.user)
        except SilenceInvalid as exc:
            self.message_user(request, exc.message, level=messages.ERROR)
            return
        obj.pk = saved.pk

    @admin.action(description="Expire the selected silences now")
    def expire_now(self, request: HttpRequest, queryset: QuerySet[Silence]) -> None:
        for silence in queryset:
            silence_expire(silence_id=silence.pk, actor=request.user)


@admin.register(VendorCircuit)
class VendorCircuitAdmin(admin.ModelAdmin):
    list_display = ("vendor", "state", "failures", "opened_at", "retry_at", "last_failure_at")
    list_filter = ("state",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
