"""Content-Security-Policy on every response (issue 21 item 6).

One policy for the whole site: scripts, styles, images and fetches from our
own origin only (the dashboard's Chart.js and Swagger UI's assets are served
locally by WhiteNoise from drf-spectacular-sidecar), no plugins, no framing,
forms post back to us. The two inline blocks we cannot move to files, Swagger
UI's start-up script and style (templates/drf_spectacular/swagger_ui.html),
carry a per-request nonce, so no 'unsafe-inline' is needed.

CSP_ENABLED turns it off, CSP_REPORT_ONLY sends it as
Content-Security-Policy-Report-Only (to try a change against real traffic),
CSP_REPORT_URI adds a report-uri directive.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

NONCE = "{nonce}"

POLICY: dict[str, tuple[str, ...]] = {
    "default-src": ("'self'",),
    "script-src": ("'self'", f"'nonce-{NONCE}'"),
    "style-src": ("'self'", f"'nonce-{NONCE}'"),
    # Swagger UI and the admin draw their icons from data: SVGs in CSS.
    "img-src": ("'self'", "data:"),
    "font-src": ("'self'",),
    "connect-src": ("'self'",),
    "object-src": ("'none'",),
    "base-uri": ("'self'",),
    "form-action": ("'self'",),
    "frame-ancestors": ("'none'",),
}


def csp_header_value(*, nonce: str, report_uri: str = "") -> str:
    directives = [
        f"{name} {' '.join(sources)}".replace(NONCE, nonce) for name, sources in POLICY.items()
    ]
    if report_uri:
        directives.append(f"report-uri {report_uri}")
    return "; ".join(directives)


class ContentSecurityPolicyMiddleware:
    """Sets ``request.csp_nonce`` for templates and the CSP header on the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        nonce = secrets.token_urlsafe(18)
        request.csp_nonce = nonce  # type: ignore[attr-defined]
        response = self.get_response(request)
        if not getattr(settings, "CSP_ENABLED", True):
            return response
        header = (
            "Content-Security-Policy-Report-Only"
            if getattr(settings, "CSP_REPORT_ONLY", False)
            else "Content-Security-Policy"
        )
        if header not in response:
            response[header] = csp_header_value(
                nonce=nonce, report_uri=getattr(settings, "CSP_REPORT_URI", "")
            )
        return response
