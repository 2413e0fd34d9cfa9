"""Drill-down pages (issue 19): cycles → a cycle's healings → an order's history.

Server-rendered tables, filtered by forms (``dashboard.filters``): a filter
value that cannot be read answers 400 with the form and its error, never a
500. ADMIN and OPERATIONS only (``dashboard.access``).
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from dashboard.access import operator_required
from dashboard.filters import CycleFilterForm, HealingFilterForm
from dashboard.words import label, skip_reason_words
from healing.models import HealingAction, IssueType, RecoveryAction, RecoveryStatus
from healing.selectors import cycle_get, cycles_list
from orders.models import ActorType, Order, OrderStatusChange, Vendor, VendorMessage

PAGE_SIZE = 50
ORDER_ROWS = 200
_MAX_ID = 2**63


def _page(request: HttpRequest, rows: Any) -> Any:
    return Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))


def _query_without_page(request: HttpRequest) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


@operator_required
def cycles_view(request: HttpRequest, role: str) -> HttpResponse:
    form = CycleFilterForm(request.GET or None)
    context: dict[str, Any] = {"form": form, "role": role, "query": _query_without_page(request)}
    if form.is_bound and not form.is_valid():
        return render(request, "dashboard/cycles.html", context, status=400)
    rows = cycles_list()
    if form.is_bound:
        rows = form.apply(rows)
    context["page"] = _page(request, rows)
    return render(request, "dashboard/cycles.html", context)


def healing_row(healing: HealingAction) -> dict[str, Any]:
    silence = healing.silence
    return {
        "id": healing.pk,
        "order_id": healing.order_id,
        "order_number": healing.order.number,
        "detected_at": healing.issue_detected_at,
        "issue": label(IssueType, healing.issue_type),
        "action": label(RecoveryAction, healing.recovery_action),
        "status": healing.recovery_status,
        "status_label": label(RecoveryStatus, healing.recovery_status),
        "attempt": healing.attempt_number,
        "vendor": healing.previous_vendor.name if healing.previous_vendor else "",
        "new_vendor": healing.new_vendor.name if healing.new_vendor else "",
        "why": skip_reason_words(
            reason=healing.skip_reason,
            silence_id=healing.silence_id,
            comment=silence.comment if silence else "",
        ),
        "error": healing.error_message,
        "duration": healing.recovery_duration_seconds,
        "cycle_id": healing.cycle_id,
        "trigger": healing.trigger,
    }


def _healings(cycle_id: int | None) -> Any:
    rows = HealingAction.objects.select_related(
        "order", "previous_vendor", "new_vendor", "silence"
    ).order_by("-issue_detected_at", "-id")
    return rows.filter(cycle_id=cycle_id) if cycle_id is not None else rows


@operator_required
def healings_view(request: HttpRequest, role: str, cycle_id: int | None = None) -> HttpResponse:
    cycle = None
    if cycle_id is not None:
        cycle = cycle_get(cycle_id=cycle_id) if cycle_id < _MAX_ID else None
        if cycle is None:
            raise Http404("No cycle with that id.")
    form = HealingFilterForm(request.GET or None)
    context: dict[str, Any] = {
        "form": form,
        "role": role,
        "cycle": cycle,
        "query": _query_without_page(request),
    }
    if form.is_bound and not form.is_valid():
        return render(request, "dashboard/healings.html", context, status=400)
    rows = _healings(cycle_id)
    if form.is_bound:
        rows = form.apply(rows)
    page = _page(request, rows)
    context["page"] = page
    context["rows"] = [healing_row(h) for h in page.object_list]
    return render(request, "dashboard/healings.html", context)


def _history(order: Order) -> list[dict[str, Any]]:
    changes = list(
        OrderStatusChange.objects.filter(order=order)
        .select_related("actor_user")
        .order_by("created_at", "id")[:ORDER_ROWS]
    )
    ids = {v for c in changes for v in (c.from_vendor_id, c.to_vendor_id) if v is not None}
    names: dict[int | None, str] = {None: "—"}
    names.update(Vendor.objects.filter(pk__in=ids).values_list("id", "name"))
    return [
        {
            "at": change.created_at,
            "from_status": change.from_status,
            "to_status": change.to_status,
            "actor": label(ActorType, change.actor_type)
            + (f" ({change.actor_user.get_username()})" if change.actor_user else ""),
            "vendor_change": change.from_vendor_id != change.to_vendor_id,
            "from_vendor": names.get(change.from_vendor_id, f"#{change.from_vendor_id}"),
            "to_vendor": names.get(change.to_vendor_id, f"#{change.to_vendor_id}"),
            "reason": change.reason,
        }
        for change in changes
    ]


@operator_required
def order_view(request: HttpRequest, role: str, order_id: int) -> HttpResponse:
    order = (
        Order.objects.select_related("vendor", "buyer").filter(pk=order_id).first()
        if order_id < _MAX_ID
        else None
    )
    if order is None:
        raise Http404("No order with that id.")
    messages = (
        VendorMessage.objects.filter(order=order)
        .select_related("vendor")
        .order_by("created_at", "id")[:ORDER_ROWS]
    )
    healings = _healings(None).filter(order=order)[:ORDER_ROWS]
    return render(
        request,
        "dashboard/order.html",
        {
            "role": role,
            "order": order,
            "history": _history(order),
            "messages": messages,
            "healings": [healing_row(h) for h in healings],
        },
    )
