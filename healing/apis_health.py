"""Probes from outside: ``/api/v1/health`` (load balancers) and ``/metrics`` (Prometheus).

Both read healing state (is beat alive, the series), so they live here; who
may scrape ``/metrics`` is the API's rule (``api.metrics``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from drf_spectacular.utils import OpenApiResponse, extend_schema
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import error_body
from api.metrics import metrics_access_refused
from api.schema import ErrorSerializer
from healing.reports.prometheus import metrics_render
from healing.selectors import cycle_interval_seconds, last_cycle_started_at


def _error_detail(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _database_check() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "not healthy", never a 500
        return {"ok": False, "detail": _error_detail(exc)}
    return {"ok": True, "detail": connection.vendor}


def _broker_check() -> dict[str, Any]:
    if not settings.CELERY_BROKER_URL:
        return {"ok": True, "detail": "none configured: tasks run in-process"}
    from config.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
    except Exception as exc:  # a broker that does not answer is "unhealthy"
        return {"ok": False, "detail": _error_detail(exc)}
    return {"ok": True, "detail": conn.transport_cls}


def _cycles_check() -> dict[str, Any]:
    """Is beat alive? The sweep's beat-down alert is scheduled by beat itself, so
    a dead beat must be visible from outside: here, and in /metrics."""
    try:
        last = last_cycle_started_at()
        interval = cycle_interval_seconds()
    except Exception as exc:  # the database check reports the cause
        return {"ok": False, "detail": _error_detail(exc)}
    if last is None:
        return {"ok": True, "detail": "no cycle has run yet"}
    age = (timezone.now() - last).total_seconds()
    # Three missed intervals, as the beat-down alert counts them.
    ok = age <= 3 * interval
    return {"ok": ok, "detail": f"last cycle started {age:.0f} s ago (interval {interval} s)"}


def health_check() -> dict[str, dict[str, Any]]:
    """Database, beat and broker, each with its own verdict."""
    return {
        "database": _database_check(),
        "cycles": _cycles_check(),
        "broker": _broker_check(),
    }


class HealthApi(APIView):
    """Liveness for load balancers: the database and the broker answer. No authentication."""

    authentication_classes: list = []
    permission_classes: list = []

    class OutputSerializer(serializers.Serializer):
        class CheckSerializer(serializers.Serializer):
            ok = serializers.BooleanField()
            detail = serializers.CharField()

            class Meta:
                ref_name = "HealthCheck"

        success = serializers.BooleanField()
        status = serializers.ChoiceField(choices=["ok", "unavailable"])
        checks = serializers.DictField(child=CheckSerializer())

        class Meta:
            ref_name = "HealthResponse"

    @extend_schema(
        operation_id="health",
        auth=[],
        responses={
            200: OutputSerializer,
            503: OpenApiResponse(
                ErrorSerializer, description="A check failed; `checks` says which."
            ),
        },
    )
    def get(self, request: Request) -> Response:
        checks = health_check()
        failed = [name for name, check in checks.items() if not check["ok"]]
        if failed:
            body = error_body(
                code="unhealthy", message=f"unavailable: {', '.join(failed)}", field=None
            )
            body["checks"] = checks
            return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response({"success": True, "status": "ok", "checks": checks})


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, for a bearer token or an allowed client address."""
    refused = metrics_access_refused(request)
    if refused is not None:
        return refused
    return HttpResponse(metrics_render(), content_type=CONTENT_TYPE_LATEST)
