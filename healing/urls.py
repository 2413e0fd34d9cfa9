"""Routes of the self-healing API: the seed's paths, no trailing slashes."""

from __future__ import annotations

from django.urls import path, re_path

from healing import apis, apis_export, apis_history, apis_operator, apis_reports, apis_vendors

app_name = "self_healing_api"

urlpatterns = [
    path("stuck-orders", apis.StuckOrdersApi.as_view(), name="stuck-orders"),
    # Any one segment: the view answers 400 "orderId must be an integer" for
    # a non-number instead of a "no such endpoint" 404.
    re_path(r"^heal/(?P<order_id>[^/]+)$", apis.HealOrderApi.as_view(), name="heal"),
    path("run-cycle", apis.RunCycleApi.as_view(), name="run-cycle"),
    path("rules", apis.RuleListApi.as_view(), name="rules"),
    path("statistics", apis_reports.StatisticsApi.as_view(), name="statistics"),
    path("kpis", apis_reports.KpisApi.as_view(), name="kpis"),
    path("healing-actions", apis_history.HealingActionListApi.as_view(), name="healing-actions"),
    path(
        "healing-actions/export",
        apis_export.HealingActionExportApi.as_view(),
        name="healing-actions-export",
    ),
    path(
        "notifications/export",
        apis_export.NotificationExportApi.as_view(),
        name="notifications-export",
    ),
    path(
        "healing-actions/<int:healing_id>",
        apis_history.HealingActionDetailApi.as_view(),
        name="healing-action-detail",
    ),
    path("cycles", apis_history.CycleListApi.as_view(), name="cycles"),
    path("cycles/<int:cycle_id>", apis_history.CycleDetailApi.as_view(), name="cycle-detail"),
    # Vendor health and silences (issue 18).
    path("vendors", apis_vendors.VendorHealthListApi.as_view(), name="vendors"),
    path("silences", apis_vendors.SilenceListApi.as_view(), name="silences"),
    re_path(
        r"^silences/(?P<silence_id>[^/]+)$",
        apis_vendors.SilenceDetailApi.as_view(),
        name="silence-detail",
    ),
    re_path(
        r"^silences/(?P<silence_id>[^/]+)/expire$",
        apis_vendors.SilenceExpireApi.as_view(),
        name="silence-expire",
    ),
    # Operator tools (issue 19).
    path("rules/what-if", apis_operator.RulesWhatIfApi.as_view(), name="rules-what-if"),
    path("redrive", apis_operator.RedriveApi.as_view(), name="redrive"),
    re_path(
        r"^orders/(?P<order_id>[^/]+)/cancel$",
        apis_operator.OrderCancelManualApi.as_view(),
        name="manual-cancel",
    ),
    re_path(
        r"^orders/(?P<order_id>[^/]+)/reassign$",
        apis_operator.OrderReassignManualApi.as_view(),
        name="manual-reassign",
    ),
    re_path(
        r"^orders/(?P<order_id>[^/]+)/heal$",
        apis_operator.OrderHealManualApi.as_view(),
        name="manual-heal",
    ),
]
