"""A short read-through cache for heavy reads, shared by every web worker.

Under load, the same expensive answer (the stuck-orders list, the statistics)
is asked for many times a second; computing it once per ``seconds`` and
serving that copy keeps the API responsive while a cycle runs (issue 21
item 7). The answer says how old it is, so nobody mistakes it for live data.
The cache is Django's (Redis when ``REDIS_URL`` is set), so every gunicorn
worker and thread shares one copy. ``seconds <= 0`` turns it off. An
unreachable cache (Redis down) is logged and the answer computed afresh, as
the throttles fail open (``api.throttles``): never a 500 for a cache.

One caller refreshes, the others keep the copy they have: once a copy is
``seconds`` old, the first caller to take the refresh lock (``cache.add``,
atomic in Redis) recomputes it, and every caller meanwhile gets the previous
copy with its true age. Without this, every thread that asked while the
detection ran (seconds under a cycle's load) ran the same detection at once:
py-spy on the web workers under 20 clients found 40% of their CPU in those
simultaneous recomputes, which is what made the p99 (docs/BENCHMARK.md). A
copy is kept ``REFRESH_SECONDS`` past its period for that, and the lock
expires after as long, so a refresher that died is replaced; a stale copy is
therefore never older than ``seconds + REFRESH_SECONDS``.
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

# The longest a recompute is waited for before another caller takes it over;
# also how long a copy outlives its period so there is one to serve meanwhile.
REFRESH_SECONDS = 30.0


def read_through(*, key: str, seconds: float, compute: Callable[[], T]) -> tuple[T, float]:
    """The value under ``key`` and its age in seconds, computed when absent; when
    older than ``seconds``, one caller recomputes it and the others get the old copy."""
    if seconds <= 0:
        return compute(), 0.0
    entry_key, lock_key = f"read-through:{key}", f"read-through-refresh:{key}"
    try:
        cached = cache.get(entry_key)
        now = time.time()
        if cached is not None:
            computed_at, value = cached
            age = round(max(now - computed_at, 0.0), 3)
            if age < seconds or not cache.add(lock_key, 1, timeout=REFRESH_SECONDS):
                return value, age  # fresh, or another caller is refreshing it
    except CACHE_ERRORS as exc:
        logger.warning("read cache unavailable, %s computed uncached: %s", key, exc)
        return compute(), 0.0
    try:
        value = compute()
    except BaseException:
        _forget(lock_key, key)
        raise
    try:
        cache.set(entry_key, (now, value), timeout=seconds + REFRESH_SECONDS)
        cache.delete(lock_key)
    except CACHE_ERRORS as exc:
        logger.warning("read cache unavailable, %s not stored: %s", key, exc)
    return value, 0.0


def _forget(lock_key: str, key: str) -> None:
    """Free the refresh lock after a failed recompute, so the next caller retries."""
    try:
        cache.delete(lock_key)
    except CACHE_ERRORS as exc:
        logger.warning("read cache unavailable, %s refresh lock not freed: %s", key, exc)
