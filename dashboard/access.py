"""Who may open the operator pages: ADMIN and OPERATIONS (docs/DECISIONS.md "Roles").

The drill-down and what-if pages show orders, vendors and healings one by
one, as the operator panels of the dashboard do; VIEWER sees statistics only
and gets a 403 page, an anonymous visitor the dashboard's login page.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache

from orders.roles import ADMIN, OPERATIONS, user_role

OPERATOR_ROLES = (ADMIN, OPERATIONS)


def operator_required(view: Callable) -> Callable:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("dashboard:login"))
        role = user_role(request.user)
        if role not in OPERATOR_ROLES:
            return render(
                request,
                "dashboard/forbidden.html",
                {"role": role, "needed": " or ".join(OPERATOR_ROLES)},
                status=403,
            )
        return view(request, role, *args, **kwargs)

    return never_cache(wrapped)
