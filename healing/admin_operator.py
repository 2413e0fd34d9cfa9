"""Operator tools in the admin (issue 19): manual actions, redrive, CSV export.

orders and notifications never import healing, so their admins cannot offer
healing's manual actions themselves; healing extends them here (a subclass,
registered in their place) and adds the redrive and export actions to the
healing list. Manual actions are ADMIN only; redrive and export ADMIN and
OPERATIONS (``api.permissions.user_role``).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse

import notifications.admin as notifications_admin  # registered before it is replaced
import orders.admin as orders_admin
from api.permissions import user_role
from healing.export import healings_csv
from healing.models import RecoveryAction
from healing.operator_actions import (
    order_cancel_manual,
    order_heal_manual,
    order_reassign_manual,
)
from healing.redrive import redrive_selection
from notifications.models import AdminNotification
from orders.errors import DomainError
from orders.models import Order, Vendor, VendorAssignment
from orders.roles import ADMIN, OPERATIONS


def _role_in(request: HttpRequest, *roles: str) -> bool:
    return user_role(request.user) in roles


def _each(
    modeladmin: admin.ModelAdmin, request: HttpRequest, orders: list[Order], act: Any
) -> None:
    done, refused = 0, []
    for order in orders:
        try:
            act(order)
            done += 1
        except DomainError as exc:
            refused.append(f"{order.number}: {exc}")
    if done:
        modeladmin.message_user(request, f"{done} order(s) done; hold and notification resolved.")
    for line in refused:
        modeladmin.message_user(request, line, messages.ERROR)


def _eligible_vendors(order: Order) -> QuerySet[Vendor]:
    had = VendorAssignment.objects.filter(order_id=order.pk, vendor_id=OuterRef("pk"))
    return Vendor.objects.filter(is_active=True).exclude(Exists(had)).order_by("name")


class ManualActionsMixin(admin.ModelAdmin):
    """The three manual actions, for any admin whose rows lead to an order."""

    order_of: Any = staticmethod(lambda row: row)

    def has_manual_permission(self, request: HttpRequest) -> bool:
        return _role_in(request, ADMIN)

    def _orders(self, queryset: QuerySet) -> list[Order]:
        return [order for order in map(self.order_of, queryset) if order is not None]

    @admin.action(permissions=["manual"], description="Manual hold: cancel and refund")
    def manual_cancel(self, request: HttpRequest, queryset: QuerySet) -> None:
        _each(
            self,
            request,
            self._orders(queryset),
            lambda order: order_cancel_manual(order=order, user=request.user),
        )

    @admin.action(permissions=["manual"], description="Manual hold: heal now (retry workflow)")
    def manual_heal_retry(self, request: HttpRequest, queryset: QuerySet) -> None:
        _each(
            self,
            request,
            self._orders(queryset),
            lambda order: order_heal_manual(
                order=order, action=RecoveryAction.RETRY_WORKFLOW, user=request.user
            ),
        )

    @admin.action(permissions=["manual"], description="Manual hold: heal now (reassign vendor)")
    def manual_heal_reassign(self, request: HttpRequest, queryset: QuerySet) -> None:
        _each(
            self,
            request,
            self._orders(queryset),
            lambda order: order_heal_manual(
                order=order, action=RecoveryAction.REASSIGN_VENDOR, user=request.user
            ),
        )

    @admin.action(permissions=["manual"], description="Manual hold: reassign to a chosen vendor")
    def manual_reassign(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        rows = [(row, self.order_of(row)) for row in queryset]
        if request.POST.get("apply"):
            chosen = []
            for _row, order in rows:
                vendor = Vendor.objects.filter(
                    pk=request.POST.get(f"vendor-{order.pk}") or 0
                ).first()
                if vendor is not None:
                    chosen.append((order, vendor))
            vendors = {order.pk: vendor for order, vendor in chosen}
            _each(
                self,
                request,
                [order for order, _ in chosen],
                lambda order: order_reassign_manual(
                    order=order, vendor=vendors[order.pk], user=request.user
                ),
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "rows": [
                {"pk": row.pk, "order": order, "vendors": _eligible_vendors(order)}
                for row, order in rows
            ],
            "selected_field": helpers.ACTION_CHECKBOX_NAME,
            "action": "manual_reassign",
            "back": request.get_full_path(),
            "title": "Reassign to a chosen vendor",
        }
        return TemplateResponse(request, "admin/healing/reassign_choose.html", context)


class OrderOperatorAdmin(ManualActionsMixin, orders_admin.OrderAdmin):
    actions = ("manual_cancel", "manual_reassign", "manual_heal_retry", "manual_heal_reassign")


class NotificationOperatorAdmin(ManualActionsMixin, notifications_admin.AdminNotificationAdmin):
    order_of = staticmethod(lambda notification: notification.order)
    actions = (  # type: ignore[assignment]
        *notifications_admin.AdminNotificationAdmin.actions,
        "manual_cancel",
        "manual_reassign",
        "manual_heal_retry",
        "manual_heal_reassign",
    )


class HealingOperatorActions(admin.ModelAdmin):
    """Redrive and export for the healing list."""

    def has_redrive_permission(self, request: HttpRequest) -> bool:
        return _role_in(request, ADMIN, OPERATIONS)

    def has_export_permission(self, request: HttpRequest) -> bool:
        return _role_in(request, ADMIN, OPERATIONS)

    @admin.action(permissions=["redrive"], description="Redrive selected failed healings")
    def redrive_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        ids = redrive_selection(
            healing_ids=list(queryset.values_list("pk", flat=True)), user=request.user
        )
        self.message_user(
            request,
            f"Started {len(ids)} healing(s); selected healings that are not FAILED or "
            "MANUAL_REQUIRED, not their order's last, or whose order moved on were left.",
        )

    @admin.action(permissions=["export"], description="Export selected healings as CSV")
    def export_csv(self, request: HttpRequest, queryset: QuerySet) -> StreamingHttpResponse:
        response = StreamingHttpResponse(
            healings_csv(queryset.order_by("-issue_detected_at", "-id")),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = 'attachment; filename="healing-actions.csv"'
        return response


def operator_admin_install(*, healing_admin: type[admin.ModelAdmin]) -> None:
    """Put the operator admins in place of the plain ones (called from healing.admin)."""
    from healing.models import HealingAction

    for model, extended in (
        (Order, OrderOperatorAdmin),
        (AdminNotification, NotificationOperatorAdmin),
        (
            HealingAction,
            type(
                "HealingActionOperatorAdmin",
                (HealingOperatorActions, healing_admin),
                {
                    "actions": ("redrive_selected", "export_csv"),
                },
            ),
        ),
    ):
        if admin.site.is_registered(model):
            admin.site.unregister(model)
        admin.site.register(model, extended)
