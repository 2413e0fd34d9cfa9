"""The drill-down pages' filters, as forms: a bad value is a form error and a 400, never a 500."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.db.models import Q, QuerySet

from healing.models import (
    CycleStatus,
    HealingAction,
    HealingCycle,
    IssueType,
    RecoveryAction,
    RecoveryStatus,
    Trigger,
)
from orders.models import Vendor

DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]


def _any(choices: Any) -> list[tuple[str, str]]:
    return [("", "any"), *choices]


class _PeriodForm(forms.Form):
    """``from`` / ``to``: a date or a date and time (UTC); ``from`` before ``to``."""

    start = forms.DateTimeField(
        required=False,
        label="From (UTC)",
        input_formats=DATETIME_FORMATS,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    end = forms.DateTimeField(
        required=False,
        label="To (UTC)",
        input_formats=DATETIME_FORMATS,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start: datetime | None = data.get("start")
        end: datetime | None = data.get("end")
        if start and end and start >= end:
            self.add_error("end", "“To” must be after “From”.")
        return data


class HealingFilterForm(_PeriodForm):
    status = forms.ChoiceField(required=False, choices=_any(RecoveryStatus.choices))
    action = forms.ChoiceField(required=False, choices=_any(RecoveryAction.choices))
    issue_type = forms.ChoiceField(
        required=False, choices=_any(IssueType.choices), label="Issue type"
    )
    vendor = forms.ModelChoiceField(
        required=False,
        queryset=Vendor.objects.order_by("name", "id"),
        empty_label="any",
        help_text="The order's vendor when the healing was detected.",
        error_messages={"invalid_choice": "No vendor with that id."},
    )
    field_order = ["status", "action", "issue_type", "vendor", "start", "end"]

    def apply(self, rows: QuerySet[HealingAction]) -> QuerySet[HealingAction]:
        data = self.cleaned_data
        if data.get("status"):
            rows = rows.filter(recovery_status=data["status"])
        if data.get("action"):
            rows = rows.filter(recovery_action=data["action"])
        if data.get("issue_type"):
            rows = rows.filter(issue_type=data["issue_type"])
        if data.get("vendor"):
            rows = rows.filter(previous_vendor=data["vendor"])
        if data.get("start"):
            rows = rows.filter(issue_detected_at__gte=data["start"])
        if data.get("end"):
            rows = rows.filter(issue_detected_at__lt=data["end"])
        return rows


class CycleFilterForm(_PeriodForm):
    status = forms.ChoiceField(required=False, choices=_any(CycleStatus.choices))
    trigger = forms.ChoiceField(required=False, choices=_any(Trigger.choices))
    guard = forms.ChoiceField(
        required=False,
        choices=[("", "any"), ("yes", "tripped"), ("no", "not tripped")],
        label="Guard",
    )
    field_order = ["status", "trigger", "guard", "start", "end"]

    def apply(self, rows: QuerySet[HealingCycle]) -> QuerySet[HealingCycle]:
        data = self.cleaned_data
        if data.get("status"):
            rows = rows.filter(status=data["status"])
        if data.get("trigger"):
            rows = rows.filter(trigger=data["trigger"])
        if data.get("guard"):
            rows = rows.filter(guard_tripped=data["guard"] == "yes")
        period = Q()
        if data.get("start"):
            period &= Q(started_at__gte=data["start"])
        if data.get("end"):
            period &= Q(started_at__lt=data["end"])
        return rows.filter(period)


def form_errors(form: forms.Form) -> dict[str, list[str]]:
    """Field name -> messages, for the JSON answer and the page's error list."""
    return {field: [str(m) for m in messages] for field, messages in form.errors.items()}
