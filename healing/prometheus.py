"""Access to ``/metrics`` and its view (moving to ``api/metrics.py`` and
``healing/apis.py``); the collector lives in ``healing.reports.prometheus``."""

from __future__ import annotations

import hmac
import ipaddress
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from healing.reports.prometheus import (  # noqa: F401  (old import path)
    CYCLE_BUCKETS,
    RECOVERY_BUCKETS,
    HealingCollector,
    metrics_render,
    scrape_cache_warm,
)

logger = logging.getLogger("healing.prometheus")


# --- Access and the view ------------------------------------------------------


def _client_address(request: HttpRequest) -> str:
    if settings.METRICS_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.META.get("REMOTE_ADDR", "")


def address_allowed(address: str, allowed: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in allowed:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            logger.warning("METRICS_ALLOWED_IPS entry %r is not an address or network", entry)
    return False


def token_valid(request: HttpRequest) -> bool:
    expected = settings.METRICS_TOKEN
    if not expected:
        return False
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented:
        return False
    return hmac.compare_digest(presented.strip().encode(), expected.encode())


def metrics_access_allowed(request: HttpRequest) -> bool:
    """A valid bearer token, or a client address in METRICS_ALLOWED_IPS."""
    return token_valid(request) or address_allowed(
        _client_address(request), settings.METRICS_ALLOWED_IPS
    )


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not metrics_access_allowed(request):
        response = HttpResponse("metrics: access denied\n", status=401, content_type="text/plain")
        if settings.METRICS_TOKEN:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        else:
            response.status_code = 403
        return response
    return HttpResponse(metrics_render(), content_type=CONTENT_TYPE_LATEST)
