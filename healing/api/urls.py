"""Routes of the self-healing API: the seed's paths, no trailing slashes."""

from __future__ import annotations

from django.urls import path, re_path

from healing.api import views
from healing.api.errors import json_not_found

app_name = "self_healing_api"

urlpatterns = [
    path("stuck-orders", views.StuckOrdersApi.as_view(), name="stuck-orders"),
    path("heal/<int:order_id>", views.HealOrderApi.as_view(), name="heal"),
    path("run-cycle", views.RunCycleApi.as_view(), name="run-cycle"),
    path("statistics", views.StatisticsApi.as_view(), name="statistics"),
    path("kpis", views.KpisApi.as_view(), name="kpis"),
    path("notifications", views.NotificationListApi.as_view(), name="notifications"),
    path(
        "notifications/<int:notification_id>/acknowledge",
        views.NotificationAcknowledgeApi.as_view(),
        name="notification-acknowledge",
    ),
    path(
        "notifications/<int:notification_id>/resolve",
        views.NotificationResolveApi.as_view(),
        name="notification-resolve",
    ),
    path("healing-actions", views.HealingActionListApi.as_view(), name="healing-actions"),
    path(
        "healing-actions/<int:healing_id>",
        views.HealingActionDetailApi.as_view(),
        name="healing-action-detail",
    ),
    path("cycles", views.CycleListApi.as_view(), name="cycles"),
    path("cycles/<int:cycle_id>", views.CycleDetailApi.as_view(), name="cycle-detail"),
    path("rules", views.RuleListApi.as_view(), name="rules"),
    # Anything else under the prefix is a JSON 404, with DEBUG on or off.
    re_path(r"^[\s\S]*$", json_not_found),
]
