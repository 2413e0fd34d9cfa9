"""A short read-through cache for heavy reads, shared by every web worker.

Under load, the same expensive answer (the stuck-orders list, the statistics)
is asked for many times a second; computing it once per ``seconds`` and
serving that copy keeps the API responsive while a cycle runs (issue 21
item 7). The answer says how old it is, so nobody mistakes it for live data.
The cache is Django's (Redis when ``REDIS_URL`` is set), so every gunicorn
worker and thread shares one copy. ``seconds <= 0`` turns it off. An
unreachable cache (Redis down) is logged and the answer computed afresh, as
the throttles fail open (``api.throttles``): never a 500 for a cache.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.core.cache import cache

from api.throttles import CACHE_ERRORS

logger = logging.getLogger(__name__)

T = TypeVar("T")


def read_through(*, key: str, seconds: float, compute: Callable[[], T]) -> tuple[T, float]:
    """The value under ``key`` and its age in seconds, computing it when absent or stale."""
    if seconds <= 0:
        return compute(), 0.0
    try:
        cached = cache.get(f"read-through:{key}")
    except CACHE_ERRORS as exc:
        logger.warning("read cache unavailable, %s computed uncached: %s", key, exc)
        return compute(), 0.0
    now = time.time()
    if cached is not None:
        computed_at, value = cached
        return value, round(now - computed_at, 3)
    value = compute()
    try:
        cache.set(f"read-through:{key}", (now, value), timeout=seconds)
    except CACHE_ERRORS as exc:
        logger.warning("read cache unavailable, %s not stored: %s", key, exc)
    return value, 0.0
