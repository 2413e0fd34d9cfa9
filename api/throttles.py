"""Scoped throttles whose rates and on/off switch are read at request time.

DRF binds ``DEFAULT_THROTTLE_RATES`` when its throttle module is imported, so
``override_settings`` cannot change it later; these read ``API_THROTTLE_*``
settings per request instead. Counters live in the default cache: Redis when
``REDIS_URL`` is set, so every web process shares them.

An anonymous caller is keyed on :func:`api.clients.client_address`, never on
the raw ``X-Forwarded-For`` (DRF's default without ``NUM_PROXIES``), which
a password guesser could rotate to get a fresh budget on every request.

When the cache is unreachable (Redis down) a throttle **fails open**: the
request is allowed and a warning logged (logger ``api.throttles``), instead
of the cache's ConnectionError answering 500 — an operator's ``run-cycle``
must work while Redis is being repaired. The login forms keep their lockout
(django-axes, in the database) meanwhile; only the API budgets are off.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from redis.exceptions import RedisError
from rest_framework.throttling import ScopedRateThrottle

from api.clients import client_address

logger = logging.getLogger(__name__)

# What an unreachable cache raises: redis-py's errors, or a socket's.
CACHE_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError)


class SettingsScopedThrottle(ScopedRateThrottle):
    def allow_request(self, request: Any, view: Any) -> bool:
        if not getattr(settings, "API_THROTTLE_ENABLED", True):
            return True
        try:
            return super().allow_request(request, view)
        except CACHE_ERRORS as exc:
            logger.warning(
                "throttle cache unavailable, request allowed unthrottled (scope %s): %s",
                self.scope,
                exc,
            )
            return True

    def get_rate(self) -> str | None:
        return getattr(settings, "API_THROTTLE_RATES", {}).get(self.scope)

    def get_ident(self, request: Any) -> str:
        return client_address(request)
