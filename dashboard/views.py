"""The operator dashboard: one page and the JSON it refreshes itself from.

Thin views: check the role, call ``dashboard.selectors.dashboard_data``,
render. Session authentication (the dashboard's login page or the Django
admin's, same session); VIEWER users, who are not staff, log in through the
dashboard's own login page.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache

from dashboard.selectors import MAX_DAYS, dashboard_data, panels_for_role
from orders.roles import user_role

DEFAULT_DAYS = 14
REFRESH_SECONDS = 5


def _days(request: HttpRequest) -> int:
    try:
        days = int(request.GET.get("days", DEFAULT_DAYS))
    except ValueError:
        return DEFAULT_DAYS
    return max(1, min(days, MAX_DAYS))


def _with_role(*, json: bool) -> Callable:
    """Login required and a role: the page redirects to the login page, the
    JSON endpoint answers 401 / 403 (a fetch cannot follow a login redirect)."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                if json:
                    return JsonResponse({"detail": "authentication required"}, status=401)
                return redirect_to_login(request.get_full_path(), reverse("dashboard:login"))
            role = user_role(request.user)
            if not panels_for_role(role):
                if json:
                    return JsonResponse({"detail": "no dashboard role"}, status=403)
                return render(request, "dashboard/no_role.html", status=403)
            return view(request, role, *args, **kwargs)

        return never_cache(wrapped)

    return decorator


@_with_role(json=False)
def dashboard(request: HttpRequest, role: str) -> HttpResponse:
    days = _days(request)
    data = dashboard_data(role=role, days=days)
    return render(
        request,
        "dashboard/index.html",
        {
            "data": data,
            "panels": set(data["panels"]),
            "role": role,
            "days": days,
            "refresh_seconds": REFRESH_SECONDS,
            "data_url": f"{reverse('dashboard:data')}?days={days}",
            "admin_url": f"/{settings.ADMIN_URL}",
        },
    )


@_with_role(json=True)
def dashboard_json(request: HttpRequest, role: str) -> JsonResponse:
    return JsonResponse(dashboard_data(role=role, days=_days(request)))
