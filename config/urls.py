from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from api.auth import TokenObtainApi, TokenObtainSlashApi, TokenRefreshApi, TokenRefreshSlashApi
from api.errors import json_not_found
from healing.apis_health import HealthApi, metrics_view
from orders import urls as order_urls

urlpatterns = [
    path(settings.ADMIN_URL, admin.site.urls),
    path("dashboard/", include("dashboard.urls")),
    path("metrics", metrics_view, name="metrics"),
    # API (issue 7): JWT, the self-healing endpoints, health, OpenAPI. No
    # trailing slashes; the token endpoints' old slash spelling still works.
    path("api/v1/auth/token", TokenObtainApi.as_view(), name="token_obtain_pair"),
    path("api/v1/auth/token/refresh", TokenRefreshApi.as_view(), name="token_refresh"),
    path("api/v1/auth/token/", TokenObtainSlashApi.as_view()),
    path("api/v1/auth/token/refresh/", TokenRefreshSlashApi.as_view()),
    path("api/v1/health", HealthApi.as_view(), name="health"),
    path("api/v1/self-healing/", include("healing.urls")),
    path("api/v1/self-healing/", include("notifications.urls")),
    # The marketplace's edges (issue 14): vendors by API key, order intake by JWT.
    path("api/v1/vendor/", include(order_urls.vendor_urlpatterns)),
    path("api/v1/orders", include(order_urls.order_urlpatterns)),
    path("api/v1/orders/", include(order_urls.order_detail_urlpatterns)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/schema", RedirectView.as_view(pattern_name="schema", query_string=True)),
    path("api/docs", RedirectView.as_view(pattern_name="swagger-ui", query_string=True)),
    # Anything else under /api/ is a JSON 404, with DEBUG on or off.
    re_path(r"^api/", json_not_found),
]

# Errors under /api/ are JSON even outside the DRF views (api.errors).
handler404 = "api.errors.handler404"
handler500 = "api.errors.handler500"
