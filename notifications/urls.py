"""Routes of the notification API, under the seed's /api/v1/self-healing/ prefix."""

from __future__ import annotations

from django.urls import path

from notifications import apis

app_name = "notifications_api"

urlpatterns = [
    path("notifications", apis.NotificationListApi.as_view(), name="notifications"),
    path(
        "notifications/<int:notification_id>/acknowledge",
        apis.NotificationAcknowledgeApi.as_view(),
        name="notification-acknowledge",
    ),
    path(
        "notifications/<int:notification_id>/resolve",
        apis.NotificationResolveApi.as_view(),
        name="notification-resolve",
    ),
]
