"""The API's helpers that are about HTTP, not the domain: resolving a path id
to an order (or the API's 404) and the health check's probes."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection

from healing.api.errors import ApiNotFound
from orders.models import Order

# PostgreSQL's bigint: a larger id names no row, and must not reach the database.
MAX_ID = 2**63 - 1


def order_get_or_404(*, order_id: int) -> Order:
    order = Order.objects.filter(pk=order_id).first() if 0 < order_id <= MAX_ID else None
    if order is None:
        raise ApiNotFound(f"order {order_id} does not exist", field="orderId")
    return order


def health_check() -> dict[str, dict[str, Any]]:
    """Database and broker reachability, each with its own verdict."""
    checks: dict[str, dict[str, Any]] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        checks["database"] = {"ok": True, "detail": connection.vendor}
    except Exception as exc:  # any failure means "not healthy", never a 500
        checks["database"] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:300]}
    checks["cycles"] = _cycles_check()
    if not settings.CELERY_BROKER_URL:
        checks["broker"] = {"ok": True, "detail": "none configured: tasks run in-process"}
        return checks
    from config.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
        checks["broker"] = {"ok": True, "detail": conn.transport_cls}
    except Exception as exc:  # a broker that does not answer is "unhealthy"
        checks["broker"] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:300]}
    return checks


def _cycles_check() -> dict[str, Any]:
    """Is beat alive? The sweep's beat-down alert is scheduled by beat itself, so
    a dead beat must be visible from outside: here, and in /metrics."""
    from django.utils import timezone

    from notifications.selectors import cycle_interval_seconds, last_cycle_started_at

    try:
        last = last_cycle_started_at()
        interval = cycle_interval_seconds()
    except Exception as exc:  # the database check reports the cause
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:300]}
    if last is None:
        return {"ok": True, "detail": "no cycle has run yet"}
    age = (timezone.now() - last).total_seconds()
    # Three missed intervals, as the beat-down alert counts them.
    ok = age <= 3 * interval
    return {"ok": ok, "detail": f"last cycle started {age:.0f} s ago (interval {interval} s)"}
