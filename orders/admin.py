from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from orders.models import (
    Buyer,
    CreditAccount,
    CreditEntry,
    Order,
    OrderStatusChange,
    Vendor,
    VendorAssignment,
    VendorMessage,
)


class StatusChangeInline(admin.TabularInline):
    model = OrderStatusChange
    extra = 0
    can_delete = False
    fields = (
        "created_at",
        "from_status",
        "to_status",
        "from_vendor",
        "to_vendor",
        "actor_type",
        "actor_user",
        "reason",
    )
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    # The history keeps vendor ids (a vendor row may go); show the name.
    @admin.display(description="from vendor")
    def from_vendor(self, obj: OrderStatusChange) -> str:
        return _vendor_display(obj.from_vendor_id)

    @admin.display(description="to vendor")
    def to_vendor(self, obj: OrderStatusChange) -> str:
        return _vendor_display(obj.to_vendor_id)


def _vendor_display(vendor_id: int | None) -> str:
    if vendor_id is None:
        return "-"
    vendor = Vendor.objects.filter(pk=vendor_id).only("name").first()
    if vendor is None:
        return f"id {vendor_id}"
    url = reverse("admin:orders_vendor_change", args=[vendor_id])
    return format_html('<a href="{}">{}</a>', url, vendor.name)


class AssignmentInline(admin.TabularInline):
    model = VendorAssignment
    extra = 0
    can_delete = False
    readonly_fields = ("vendor", "assigned_at", "ended_at", "outcome")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = (
        "number",
        "status",
        "vendor",
        "buyer",
        "payment_method",
        "total",
        "stuck_since",
        "updated_at",
    )
    list_filter = ("status", "payment_method")
    search_fields = ("number",)
    list_select_related = ("vendor", "buyer")
    show_full_result_count = False
    # Status changes go through orders.services only, never through a form.
    readonly_fields = (
        "number",
        "buyer",
        "vendor",
        "status",
        "payment_method",
        "total",
        "created_at",
        "updated_at",
        "status_changed_at",
        "stuck_since",
    )
    inlines = [StatusChangeInline, AssignmentInline]

    def has_add_permission(self, request) -> bool:
        return False

    # Read-only: the page shows the order and its history with a Close button,
    # no Save or Delete (an order and its audit rows are never deleted here).
    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Vendor)
class VendorAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "is_active",
        "capacity",
        "open_orders",
        "acceptance_rate",
        "avg_response_minutes",
    )
    list_filter = ("is_active",)
    search_fields = ("name",)


class CreditEntryInline(admin.TabularInline):
    model = CreditEntry
    extra = 0
    can_delete = False
    readonly_fields = ("order", "kind", "amount", "created_at")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(CreditAccount)
class CreditAccountAdmin(admin.ModelAdmin):
    list_display = ("buyer", "credit_limit")
    inlines = [CreditEntryInline]


@admin.register(Buyer)
class BuyerAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)


@admin.register(VendorMessage)
class VendorMessageAdmin(admin.ModelAdmin):
    list_display = ("created_at", "order", "vendor", "kind", "status", "backend", "error")
    list_filter = ("kind", "status", "backend")
    raw_id_fields = ("order", "vendor")

    # Audit rows (invariant 13): viewed, never added, edited or deleted here.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
