"""Who is calling: the client address, from a configured number of trusted proxies.

``X-Forwarded-For`` is written by whoever sends the request, so its left
entries are the client's to choose. Only the hops added by our own proxies
can be believed: with ``TRUSTED_PROXY_COUNT = n`` the client is the address
``n`` hops from the right of ``X-Forwarded-For + [REMOTE_ADDR]`` (the
right-most untrusted hop). With 0 (the default) the header is ignored and
``REMOTE_ADDR`` is the client. Throttling, ``/metrics`` access and request
logs all use :func:`client_address`, so they agree on who the caller is.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings


def client_address(request: Any) -> str:
    """The caller's address as our trusted proxies saw it (never a header the client chose)."""
    meta = getattr(request, "META", {})
    remote = str(meta.get("REMOTE_ADDR", "") or "").strip()
    trusted = max(int(getattr(settings, "TRUSTED_PROXY_COUNT", 0) or 0), 0)
    if trusted == 0:
        return remote
    forwarded = [hop.strip() for hop in str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
    chain = [hop for hop in forwarded if hop] + ([remote] if remote else [])
    if not chain:
        return ""
    # The proxy nearest to us is REMOTE_ADDR; each trusted proxy appended the
    # address it received from. Fewer hops than proxies: the left-most we have.
    return chain[-(trusted + 1)] if len(chain) > trusted else chain[0]
