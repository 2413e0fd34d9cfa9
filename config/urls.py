from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from healing.api.auth import TokenObtainApi, TokenRefreshApi
from healing.api.views import HealthApi
from healing.prometheus import metrics_view

urlpatterns = [
    path(settings.ADMIN_URL, admin.site.urls),
    path("dashboard/", include("dashboard.urls")),
    path("metrics", metrics_view, name="metrics"),
    # API (issue 7): JWT, the self-healing endpoints, health, OpenAPI.
    path("api/v1/auth/token/", TokenObtainApi.as_view(), name="token_obtain_pair"),
    path("api/v1/auth/token/refresh/", TokenRefreshApi.as_view(), name="token_refresh"),
    path("api/v1/health", HealthApi.as_view(), name="health"),
    path("api/v1/self-healing/", include("healing.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]

# API (issue 7): errors under /api/ are JSON even outside the DRF views.
handler404 = "healing.api.errors.handler404"
handler500 = "healing.api.errors.handler500"
