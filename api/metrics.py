"""Who may scrape ``/metrics``: a bearer token, or an allowed client address.

The address is :func:`api.clients.client_address`, the same trusted-proxy
rule the throttles use: behind ``TRUSTED_PROXY_COUNT`` proxies a client's own
``X-Forwarded-For`` entries (``127.0.0.1`` put ahead of the proxy's) are never
believed. The view that renders the series lives with the data
(``healing.apis_health``); this module holds only the access rule.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from api.clients import client_address

logger = logging.getLogger("api.metrics")


def address_allowed(address: str, allowed: list[str]) -> bool:
    """Is ``address`` in one of the addresses or CIDR networks of ``allowed``?"""
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
        client_address(request), settings.METRICS_ALLOWED_IPS
    )


def metrics_access_refused(request: HttpRequest) -> HttpResponse | None:
    """None when the caller may scrape; otherwise the 401 (a token would help) or 403."""
    if metrics_access_allowed(request):
        return None
    response = HttpResponse("metrics: access denied\n", status=401, content_type="text/plain")
    if settings.METRICS_TOKEN:
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    else:
        response.status_code = 403
    return response
