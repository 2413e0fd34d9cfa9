"""Streamed CSV exports (issue 19): the list endpoints' filters, every matching row."""

from __future__ import annotations

from collections.abc import Iterator

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.views import APIView

from api.inputs import query_input
from api.permissions import IsOperator
from api.schema import AUTH_ERRORS, error_responses
from healing import selectors
from healing.apis_history import HealingActionListApi
from healing.export import healings_csv, notifications_csv
from notifications.apis import NotificationListApi
from notifications.selectors import notifications_list

CSV_RESPONSE = OpenApiResponse(OpenApiTypes.STR, description="text/csv, streamed")


def _streamed(lines: Iterator[str], *, name: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.csv"'
    return response


class HealingActionExportApi(APIView):
    """Every healing the list's filters select, newest first, as CSV."""

    permission_classes = [IsOperator]

    @extend_schema(
        operation_id="healing_actions_export",
        parameters=[HealingActionListApi.InputSerializer],
        responses={(200, "text/csv"): CSV_RESPONSE, **error_responses(400, *AUTH_ERRORS)},
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        params = query_input(HealingActionListApi.InputSerializer, request)
        rows = selectors.healing_actions_list(
            order_id=params.get("order"),
            recovery_status=params.get("status"),
            issue_type=params.get("issue_type"),
            recovery_action=params.get("action"),
            trigger=params.get("trigger"),
            cycle_id=params.get("cycle"),
            detected_from=params.get("detected_from"),
            detected_to=params.get("detected_to"),
        )
        return _streamed(healings_csv(rows), name="healing-actions")


class NotificationExportApi(APIView):
    """Every notification the list's filters select (pending by default), as CSV."""

    permission_classes = [IsOperator]

    @extend_schema(
        operation_id="notifications_export",
        parameters=[NotificationListApi.InputSerializer],
        responses={(200, "text/csv"): CSV_RESPONSE, **error_responses(400, *AUTH_ERRORS)},
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        params = query_input(NotificationListApi.InputSerializer, request)
        flags = {key: params[key] for key in ("acknowledged", "resolved") if key in params}
        rows = notifications_list(
            severity=params.get("severity"), notification_type=params.get("type"), **flags
        )
        return _streamed(notifications_csv(rows), name="notifications")
