"""The what-if page (issue 19): today's rules against proposed ones, as a chart.

The form takes the window and, per enabled rule, a proposed threshold and
ladder; ``healing.whatif.rules_whatif`` (the code behind the command and
``POST /rules/what-if``) replays the history and changes nothing. A value the
replay cannot take is a form error and a 400.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from dashboard.access import operator_required
from dashboard.svg import comparison_chart
from healing.detection import rules_enabled
from healing.models import RecoveryAction, StuckRule
from healing.whatif import WhatIfInvalid, rules_whatif

DAYS_MAX = 90
SERIES = ("Today's rules", "Proposed rules")


class WhatIfForm(forms.Form):
    days = forms.IntegerField(min_value=1, max_value=DAYS_MAX, initial=7, label="Days of history")

    def __init__(self, *args: Any, rules: list[StuckRule], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rules = rules
        for rule in rules:
            self.fields[f"threshold_{rule.status}"] = forms.IntegerField(
                required=False,
                min_value=1,
                label=f"{rule.status} threshold (min)",
                help_text=f"today {rule.threshold_minutes}",
            )
            self.fields[f"ladder_{rule.status}"] = forms.CharField(
                required=False,
                max_length=300,
                label=f"{rule.status} ladder",
                help_text="today " + (", ".join(rule.ladder) or "—"),
            )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for rule in self.rules:
            raw = data.get(f"ladder_{rule.status}") or ""
            steps = [step.strip().upper() for step in raw.split(",") if step.strip()]
            unknown = [step for step in steps if step not in RecoveryAction.values]
            if unknown:
                self.add_error(
                    f"ladder_{rule.status}",
                    f"Unknown action(s): {', '.join(unknown)}. "
                    f"Use {', '.join(RecoveryAction.values)}.",
                )
            data[f"ladder_{rule.status}"] = steps
        return data

    def proposal(self) -> tuple[dict[str, int], dict[str, list[str]]]:
        data = self.cleaned_data
        thresholds = {
            rule.status: data[f"threshold_{rule.status}"]
            for rule in self.rules
            if data.get(f"threshold_{rule.status}")
        }
        ladders = {
            rule.status: data[f"ladder_{rule.status}"]
            for rule in self.rules
            if data.get(f"ladder_{rule.status}")
        }
        return thresholds, ladders


def chart_rows(report: dict[str, Any]) -> list[tuple[str, str, int, int]]:
    """The measures the chart compares, today's value and the proposed one."""
    today, proposed = report["current"], report["proposed"]
    rows = [
        ("flagged_orders", "Orders flagged", today["flagged_orders"], proposed["flagged_orders"]),
        ("escalations", "Escalations to a person", today["escalations"], proposed["escalations"]),
        (
            "self_recovered",
            "Recovered by themselves first",
            today["self_recovered_before_threshold"],
            proposed["self_recovered_before_threshold"],
        ),
    ]
    for action in RecoveryAction:
        rows.append(
            (
                f"action_{action.value}",
                f"Action: {action.label.lower()}",
                today["actions"].get(action.value, 0),
                proposed["actions"].get(action.value, 0),
            )
        )
    return rows


@operator_required
def whatif_view(request: HttpRequest, role: str) -> HttpResponse:
    rules = rules_enabled()
    form = WhatIfForm(request.GET or None, rules=rules)
    context: dict[str, Any] = {
        "form": form,
        "role": role,
        "rules": rules,
        "submit_label": "Compare",
    }
    if not form.is_bound:
        return render(request, "dashboard/whatif.html", context)
    if not form.is_valid():
        return render(request, "dashboard/whatif.html", context, status=400)
    thresholds, ladders = form.proposal()
    try:
        report = rules_whatif(
            days=form.cleaned_data["days"], thresholds=thresholds, ladders=ladders
        )
    except WhatIfInvalid as exc:
        form.add_error(None, str(exc))
        return render(request, "dashboard/whatif.html", context, status=400)
    context["report"] = report
    context["chart"] = comparison_chart(chart_rows(report), series=SERIES)
    return render(request, "dashboard/whatif.html", context)
