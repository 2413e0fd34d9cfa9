"""Where admins see, acknowledge and resolve notifications.

ADMIN users (change permission on notifications) acknowledge and resolve, in
bulk from the list or one at a time with a comment from the detail page;
OPERATIONS users (view permission only) see the same pages read-only. Every
write goes through notifications.services, which records the acting admin.
Both roles export a selection as CSV (notifications.export).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponseRedirect, StreamingHttpResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator
from django.views.decorators.http import require_POST

from notifications.admin_details import details_html, timestamp_display
from notifications.export import notifications_csv
from notifications.models import AdminNotification, NotificationDelivery
from notifications.services import notification_acknowledge, notification_resolve
from orders.roles import ADMIN, OPERATIONS, user_role


class _YesNoFilter(admin.SimpleListFilter):
    field_name = ""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(**{f"{self.field_name}__isnull": False})
        if self.value() == "no":
            return queryset.filter(**{f"{self.field_name}__isnull": True})
        return queryset


class AcknowledgedFilter(_YesNoFilter):
    title = "acknowledged"
    parameter_name = "acknowledged"
    field_name = "acknowledged_at"


class ResolvedFilter(_YesNoFilter):
    """Unresolved by default: the list opens on what still needs a human.

    "All" (resolved=all) shows every notification, resolved ones included.
    """

    title = "resolved"
    parameter_name = "resolved"
    field_name = "resolved_at"
    default = "no"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "No (default)"), ("yes", "Yes"), ("all", "All")]

    def value(self) -> str:
        return super().value() or self.default

    def choices(self, changelist: Any) -> Any:
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }


class DeliveryInline(admin.TabularInline):
    model = NotificationDelivery
    verbose_name = "delivery"
    verbose_name_plural = "Notification deliveries"
    extra = 0
    can_delete = False
    fields = ("round", "channel", "status", "attempts", "last_error", "last_attempt_at")
    readonly_fields = fields
    ordering = ("round", "channel")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


TITLE_CHARS = 70


@admin.register(AdminNotification)
class AdminNotificationAdmin(admin.ModelAdmin):
    # Fits 1440 px beside the filters: the type is a filter (and in the title),
    # and the list gives the admin's app sidebar's width to its columns.
    list_display = (
        "id",
        "severity_badge",
        "title_short",
        "order_link",
        "occurrences_count",
        "sent",
        "acknowledged",
        "resolved",
        "created",
    )
    list_display_links = ("id", "title_short")
    list_filter = (
        "notification_type",
        "severity",
        AcknowledgedFilter,
        ResolvedFilter,
        "sent",
        "created_at",
    )
    search_fields = ("order__number", "title", "dedup_key")
    date_hierarchy = "created_at"
    list_select_related = ("order",)
    show_full_result_count = False
    actions = ("acknowledge_selected", "resolve_selected", "export_csv")
    inlines = (DeliveryInline,)
    change_form_template = "admin/notifications/adminnotification/change_form.html"
    fieldsets = (
        (None, {"fields": ("title", "severity_badge", "notification_type", "message", "links")}),
        ("Details", {"fields": ("details_display",)}),
        (
            "Acknowledgement and resolution",
            {
                "fields": (
                    "acknowledged_at",
                    "acknowledged_by",
                    "acknowledgement_comment",
                    "resolved_at",
                    "resolved_by",
                    "resolution_note",
                )
            },
        ),
        (
            "Delivery",
            {
                "fields": (
                    "occurrences",
                    "created_at",
                    "last_occurred_at",
                    "sent",
                    "sent_at",
                    "delivery_method",
                    "renotify_count",
                    "renotified_at",
                    "last_delivered_at",
                    "dedup_key",
                )
            },
        ),
    )

    # --- Read-only: every field is written by the services, never the form.

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [str(name) for _title, options in self.fieldsets for name in options["fields"]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Notifications are the audit trail (docs/INVARIANTS.md, invariant 9).
        return False

    class Media:
        css = {"all": ("notifications/admin.css",)}

    # --- Columns and rendered details.

    @admin.display(description="severity", ordering="severity")
    def severity_badge(self, obj: AdminNotification) -> str:
        return format_html(
            '<span class="severity severity-{}">{}</span>',
            obj.severity.lower(),
            obj.get_severity_display(),
        )

    @admin.display(description="title", ordering="title")
    def title_short(self, obj: AdminNotification) -> str:
        return Truncator(obj.title).chars(TITLE_CHARS)

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: AdminNotification) -> str:
        created = timestamp_display(obj.created_at, fmt="j M Y, H:i")
        return format_html('<span class="nowrap">{}</span>', created)

    @admin.display(description="count", ordering="occurrences")
    def occurrences_count(self, obj: AdminNotification) -> int:
        return obj.occurrences

    @admin.display(boolean=True, ordering="acknowledged_at")
    def acknowledged(self, obj: AdminNotification) -> bool:
        return obj.acknowledged_at is not None

    @admin.display(boolean=True, ordering="resolved_at")
    def resolved(self, obj: AdminNotification) -> bool:
        return obj.resolved_at is not None

    @admin.display(description="order", ordering="order__number")
    def order_link(self, obj: AdminNotification) -> str:
        if obj.order is None:
            return "-"
        url = reverse("admin:orders_order_change", args=[obj.order_id])
        return format_html('<a class="nowrap" href="{}">{}</a>', url, obj.order.number)

    @admin.display(description="links")
    def links(self, obj: AdminNotification) -> str:
        if obj.order is None:
            return "-"
        order_url = reverse("admin:orders_order_change", args=[obj.order_id])
        healings_url = reverse("admin:healing_healingaction_changelist")
        return format_html(
            '<a href="{}">Order {}</a> · <a href="{}?order__id__exact={}">its healings</a>',
            order_url,
            obj.order.number,
            healings_url,
            obj.order_id,
        )

    @admin.display(description="details")
    def details_display(self, obj: AdminNotification) -> str:
        return details_html(obj.details)

    # --- Bulk actions (change permission: ADMIN, not OPERATIONS).

    @admin.action(permissions=["change"], description="Acknowledge selected notifications")
    def acknowledge_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = 0
        for notification in queryset.filter(acknowledged_at__isnull=True):
            notification_acknowledge(notification=notification, user=request.user)
            count += 1
        self.message_user(request, f"Acknowledged {count} notification(s).", messages.SUCCESS)

    @admin.action(permissions=["change"], description="Resolve selected notifications")
    def resolve_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = 0
        for notification in queryset.filter(resolved_at__isnull=True):
            notification_resolve(notification=notification, user=request.user)
            count += 1
        self.message_user(
            request,
            f"Resolved {count} notification(s); orders awaiting manual intervention "
            "are handed back to automation.",
            messages.SUCCESS,
        )

    # --- CSV export (issue 19): ADMIN and OPERATIONS, streamed, the selection
    # ("select all" takes every row the list's filters match).

    def has_export_permission(self, request: HttpRequest) -> bool:
        return user_role(request.user) in (ADMIN, OPERATIONS)

    @admin.action(permissions=["export"], description="Export selected notifications as CSV")
    def export_csv(self, request: HttpRequest, queryset: QuerySet) -> StreamingHttpResponse:
        response = StreamingHttpResponse(
            notifications_csv(queryset.order_by("-created_at", "-id")),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = 'attachment; filename="notifications.csv"'
        return response

    # --- One at a time, with a comment, from the detail page.

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/acknowledge/",
                wrap(require_POST(self.acknowledge_view)),
                name="notifications_adminnotification_acknowledge",
            ),
            path(
                "<path:object_id>/resolve/",
                wrap(require_POST(self.resolve_view)),
                name="notifications_adminnotification_resolve",
            ),
            *super().get_urls(),
        ]

    def _object_for_action(self, request: HttpRequest, object_id: str) -> AdminNotification:
        # get_object answers None for an id the primary key cannot parse ("abc",
        # "1\x00"), where get_object_or_404 would let the ValueError become a 500.
        notification = self.get_object(request, unquote(object_id))
        if notification is None:
            raise Http404("No notification with that id.")
        if not self.has_change_permission(request, notification):
            raise PermissionDenied
        return notification

    def acknowledge_view(self, request: HttpRequest, object_id: str) -> Any:
        notification = self._object_for_action(request, object_id)
        notification_acknowledge(
            notification=notification,
            user=request.user,
            comment=request.POST.get("comment", "").strip()[:2000],
        )
        self.message_user(request, "Notification acknowledged.", messages.SUCCESS)
        return HttpResponseRedirect(
            reverse("admin:notifications_adminnotification_change", args=[notification.pk])
        )

    def resolve_view(self, request: HttpRequest, object_id: str) -> Any:
        notification = self._object_for_action(request, object_id)
        notification_resolve(
            notification=notification,
            user=request.user,
            note=request.POST.get("note", "").strip()[:2000],
        )
        self.message_user(request, "Notification resolved.", messages.SUCCESS)
        return HttpResponseRedirect(
            reverse("admin:notifications_adminnotification_change", args=[notification.pk])
        )

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        extra_context = {**(extra_context or {}), "is_nav_sidebar_enabled": False}
        return super().changelist_view(request, extra_context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> Any:
        notification = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            "can_act": notification is not None
            and self.has_change_permission(request, notification),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)
