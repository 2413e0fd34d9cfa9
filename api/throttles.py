"""Scoped throttles whose rates and on/off switch are read at request time.

DRF binds ``DEFAULT_THROTTLE_RATES`` when its throttle module is imported, so
``override_settings`` cannot change it later; these read ``API_THROTTLE_*``
settings per request instead. Counters live in the default cache: Redis when
``REDIS_URL`` is set, so every web process shares them.

An anonymous caller is keyed on :func:`api.clients.client_address`, never on
the raw ``X-Forwarded-For`` (DRF's default without ``NUM_PROXIES``), which
a password guesser could rotate to get a fresh budget on every request.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.throttling import ScopedRateThrottle

from api.clients import client_address


class SettingsScopedThrottle(ScopedRateThrottle):
    def allow_request(self, request: Any, view: Any) -> bool:
        if not getattr(settings, "API_THROTTLE_ENABLED", True):
            return True
        return super().allow_request(request, view)

    def get_rate(self) -> str | None:
        return getattr(settings, "API_THROTTLE_RATES", {}).get(self.scope)

    def get_ident(self, request: Any) -> str:
        return client_address(request)
