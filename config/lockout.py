"""Login lockout (django-axes) for the admin and dashboard login forms.

Axes counts failures per username and per client address (settings
"Security: login lockout, CSP") and, once locked, refuses even the right
password until the cool-down ends. Only the two login forms take part: the
API's JWT token endpoint is throttled by api.throttles and answers 401/429 in
its own JSON shape, so its failures are neither counted nor locked here.
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse


def _login_form_paths() -> set[str]:
    paths = set()
    for name in ("admin:login", "dashboard:login"):
        try:
            paths.add(reverse(name))
        except NoReverseMatch:
            continue
    return paths


def lockout_exempt(request: HttpRequest, credentials: dict | None = None) -> bool:
    """AXES_WHITELIST_CALLABLE: every request but a login form's is left alone."""
    return getattr(request, "path", None) not in _login_form_paths()


class LoginLockoutBackend(AxesStandaloneBackend):
    """Axes' lockout check, for web requests only.

    ``authenticate()`` without a request does not come from a login form
    (the test client's ``login()``, a management command): there is no client
    address to lock and nothing to throttle, so it is passed on to the next
    backend instead of raising as AxesStandaloneBackend does.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
