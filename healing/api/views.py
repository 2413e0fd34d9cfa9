"""One APIView per operation: validate, call one service or selector, shape the answer.

Errors are raised (DomainError or DRF exceptions) and shaped by
``healing.api.errors.exception_handler``; no view catches to build an error.
"""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from healing import selectors
from healing.api.errors import ApiNotFound, error_body
from healing.api.operations import health_check, order_get_or_404
from healing.api.permissions import IsAdmin, IsOperator, IsViewer
from healing.api.schema import ErrorSerializer, error_responses, seed_example
from healing.api.serializers import (
    CycleSerializer,
    HealingActionSerializer,
    NotificationSerializer,
    PageInputSerializer,
    id_field,
)
from healing.api.throttles import SettingsScopedThrottle
from healing.detection import stuck_orders_detect
from healing.models import CycleStatus, IssueType, RecoveryAction, RecoveryStatus, Trigger
from healing.services import cycle_run_and_wait, healing_request
from healing.stats import kpis_evaluate, statistics_daily
from notifications.models import NotificationType, Severity
from notifications.selectors import notification_get, notifications_list
from notifications.services import notification_acknowledge, notification_resolve


def _notification_or_404(notification_id: int):
    notification = notification_get(notification_id=notification_id)
    if notification is None:
        raise ApiNotFound(f"notification {notification_id} does not exist", field="id")
    return notification


AUTH_ERRORS = (401, 403)


def query_input(serializer_class: type[serializers.Serializer], request: Request) -> dict:
    # A plain dict, not the QueryDict: DRF reads a missing boolean in a
    # QueryDict as an unticked checkbox (False) instead of "not given".
    serializer = serializer_class(data=request.query_params.dict())
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def body_input(serializer_class: type[serializers.Serializer], request: Request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def page_response(
    request: Request,
    rows: QuerySet,
    *,
    page: dict,
    key: str,
    serializer_class: type[serializers.Serializer],
) -> Response:
    limit, offset = page["limit"], page["offset"]
    count = rows.count()
    url = request.build_absolute_uri()
    url = replace_query_param(url, "limit", limit)
    next_url = (
        replace_query_param(url, "offset", offset + limit) if offset + limit < count else None
    )
    previous_url = (
        replace_query_param(url, "offset", max(offset - limit, 0)) if offset > 0 else None
    )
    return Response(
        {
            "success": True,
            "count": count,
            "next": next_url,
            "previous": previous_url,
            key: serializer_class(rows[offset : offset + limit], many=True).data,
        }
    )


def page_envelope(name: str, key: str, item: serializers.Serializer) -> type:
    """The paginated answer's schema: success, count, next, previous, items."""
    fields = {
        "success": serializers.BooleanField(),
        "count": serializers.IntegerField(),
        "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True),
        key: item,
        "Meta": type("Meta", (), {"ref_name": name}),
    }
    return type(f"{name}Serializer", (serializers.Serializer,), fields)


# --- Stuck orders -------------------------------------------------------------


class StuckOrdersApi(APIView):
    """Detect stuck orders now (the seed's `stuck_orders_view`), oldest first."""

    permission_classes = [IsOperator]

    class InputSerializer(serializers.Serializer):
        limit = serializers.IntegerField(
            required=False, min_value=1, max_value=10_000, default=1000
        )

    class OutputSerializer(serializers.Serializer):
        class StuckOrderSerializer(serializers.Serializer):
            order_id = serializers.IntegerField()
            order_number = serializers.CharField()
            status = serializers.CharField()
            issue_type = serializers.ChoiceField(choices=IssueType.choices)
            stuck_since = serializers.DateTimeField()
            stuck_minutes = serializers.IntegerField()
            recommended_action = serializers.ChoiceField(choices=RecoveryAction.choices)
            attempts = serializers.IntegerField()
            active_healing_count = serializers.IntegerField()
            vendor_id = serializers.IntegerField(allow_null=True)
            dry_run = serializers.BooleanField()

            class Meta:
                ref_name = "StuckOrder"

        success = serializers.BooleanField()
        count = serializers.IntegerField()
        stuckOrders = StuckOrderSerializer(many=True)

        class Meta:
            ref_name = "StuckOrdersResponse"

    @extend_schema(
        operation_id="stuck_orders_list",
        parameters=[InputSerializer],
        responses={200: OutputSerializer, **error_responses(400, *AUTH_ERRORS)},
        examples=[
            seed_example(
                "Seed example",
                {
                    "success": True,
                    "count": 3,
                    "stuckOrders": [
                        {
                            "order_id": 123,
                            "issue_type": "STUCK_PENDING",
                            "stuck_minutes": 45,
                            "recommended_action": "REASSIGN_VENDOR",
                        }
                    ],
                },
            )
        ],
    )
    def get(self, request: Request) -> Response:
        params = query_input(self.InputSerializer, request)
        stuck = stuck_orders_detect(limit=params["limit"])
        rows = self.OutputSerializer.StuckOrderSerializer(stuck, many=True).data
        return Response({"success": True, "count": len(rows), "stuckOrders": rows})


# --- Heal one order -----------------------------------------------------------


class HealOrderApi(APIView):
    """Heal one order now: the rule's recommended action unless `recoveryAction` names one.

    Answers 200 with the healing whatever its outcome (`recovery_status`);
    a transient vendor-gateway failure hands the healing to a worker, which
    retries it with backoff (`retry_scheduled: true`). Without an explicit
    action, an order that is not stuck answers 409 with the reason.
    """

    permission_classes = [IsOperator]
    throttle_classes = [SettingsScopedThrottle]
    throttle_scope = "healing"

    class InputSerializer(serializers.Serializer):
        issueType = serializers.ChoiceField(choices=IssueType.choices, required=False)
        recoveryAction = serializers.ChoiceField(choices=RecoveryAction.choices, required=False)

        class Meta:
            ref_name = "HealRequest"

    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        retry_scheduled = serializers.BooleanField()
        healing = HealingActionSerializer()

        class Meta:
            ref_name = "HealResponse"

    @extend_schema(
        operation_id="heal_order",
        request=InputSerializer,
        responses={
            200: OutputSerializer,
            **error_responses(400, *AUTH_ERRORS, 404, 409, 413, 415, 429),
        },
        examples=[
            seed_example(
                "Seed example",
                {"issueType": "STUCK_PENDING", "recoveryAction": "REASSIGN_VENDOR"},
                request=True,
            )
        ],
    )
    def post(self, request: Request, order_id: int) -> Response:
        data = body_input(self.InputSerializer, request)
        report = healing_request(
            order=order_get_or_404(order_id=order_id),
            requested_by=request.user,
            issue_type=data.get("issueType"),
            recovery_action=data.get("recoveryAction"),
        )
        return Response(
            self.OutputSerializer(
                {
                    "success": True,
                    "retry_scheduled": report.retry_scheduled,
                    "healing": report.healing,
                }
            ).data
        )


# --- Run a cycle --------------------------------------------------------------


class RunCycleApi(APIView):
    """Run one healing cycle now: detect, dispatch, wait a bounded time for outcomes.

    `result.pending` counts healings still running on workers when the wait
    (setting `HEALING_API_WAIT_SECONDS`) ran out. 409 when a cycle is already running.
    """

    permission_classes = [IsOperator]
    throttle_classes = [SettingsScopedThrottle]
    throttle_scope = "healing"

    class OutputSerializer(serializers.Serializer):
        class ResultSerializer(serializers.Serializer):
            healed = serializers.IntegerField()
            failed = serializers.IntegerField()
            cycle_id = serializers.IntegerField()
            detected = serializers.IntegerField()
            dispatched = serializers.IntegerField()
            redispatched = serializers.IntegerField()
            pending = serializers.IntegerField()
            skipped = serializers.IntegerField()
            escalated = serializers.IntegerField()
            guard_tripped = serializers.BooleanField()
            timed_out = serializers.BooleanField()
            waited_seconds = serializers.FloatField()

            class Meta:
                ref_name = "CycleRunResult"

        success = serializers.BooleanField()
        result = ResultSerializer()

        class Meta:
            ref_name = "RunCycleResponse"

    @extend_schema(
        operation_id="run_cycle",
        request=None,
        responses={200: OutputSerializer, **error_responses(*AUTH_ERRORS, 409, 413, 415, 429)},
        examples=[
            seed_example("Seed example", {"success": True, "result": {"healed": 5, "failed": 1}})
        ],
    )
    def post(self, request: Request) -> Response:
        # Read the body so a malformed or non-JSON one is refused like elsewhere.
        request.data  # noqa: B018
        report = cycle_run_and_wait(trigger=Trigger.API)
        cycle = report.cycle
        result = {
            "healed": cycle.healed,
            "failed": cycle.failed,
            "cycle_id": cycle.pk,
            "detected": cycle.detected,
            "dispatched": report.result.dispatched,
            "redispatched": report.result.redispatched,
            "pending": cycle.pending,
            "skipped": cycle.skipped,
            "escalated": cycle.escalated,
            "guard_tripped": cycle.guard_tripped,
            "timed_out": report.timed_out,
            "waited_seconds": round(report.waited_seconds, 3),
        }
        return Response(self.OutputSerializer({"success": True, "result": result}).data)


# --- Statistics and KPIs ------------------------------------------------------


class DaysInputSerializer(serializers.Serializer):
    days = serializers.IntegerField(required=False, default=7, min_value=1, max_value=365)

    class Meta:
        ref_name = "DaysQuery"


class StatisticsApi(APIView):
    """Daily healing statistics (the seed's `healing_statistics_view`) for the last `days` days."""

    permission_classes = [IsViewer]

    class OutputSerializer(serializers.Serializer):
        class RowSerializer(serializers.Serializer):
            issue_type = serializers.CharField()
            recovery_action = serializers.CharField()
            date = serializers.DateField()
            recovery_status = serializers.CharField(
                allow_null=True, help_text="The most common outcome in the group."
            )
            total_cases = serializers.IntegerField()
            avg_recovery_time_minutes = serializers.FloatField(allow_null=True)
            successful_recoveries = serializers.IntegerField()
            failed_recoveries = serializers.IntegerField()

            class Meta:
                ref_name = "StatisticsRow"

        success = serializers.BooleanField()
        days = serializers.IntegerField()
        statistics = RowSerializer(many=True)

        class Meta:
            ref_name = "StatisticsResponse"

    @extend_schema(
        operation_id="statistics",
        parameters=[DaysInputSerializer],
        responses={200: OutputSerializer, **error_responses(400, *AUTH_ERRORS)},
        examples=[
            seed_example(
                "Seed example",
                {
                    "success": True,
                    "days": 7,
                    "statistics": [
                        {
                            "issue_type": "STUCK_PENDING",
                            "recovery_action": "REASSIGN_VENDOR",
                            "recovery_status": "SUCCESS",
                            "total_cases": 15,
                            "avg_recovery_time_minutes": 2.5,
                            "successful_recoveries": 14,
                            "failed_recoveries": 1,
                        }
                    ],
                },
            )
        ],
    )
    def get(self, request: Request) -> Response:
        days = query_input(DaysInputSerializer, request)["days"]
        return Response({"success": True, "days": days, "statistics": statistics_daily(days=days)})


class KpisApi(APIView):
    """The seed's four KPIs over the last `days` days, each with its target and verdict."""

    permission_classes = [IsViewer]

    class OutputSerializer(serializers.Serializer):
        class KpiSerializer(serializers.Serializer):
            name = serializers.CharField()
            value = serializers.FloatField(allow_null=True)
            target = serializers.FloatField(allow_null=True)
            met = serializers.BooleanField(allow_null=True)
            comparison = serializers.ChoiceField(choices=["gt", "lt"])
            unit = serializers.CharField()
            sample_size = serializers.IntegerField()

            class Meta:
                ref_name = "Kpi"

        success = serializers.BooleanField()
        days = serializers.IntegerField()
        kpis = KpiSerializer(many=True)

        class Meta:
            ref_name = "KpisResponse"

    @extend_schema(
        operation_id="kpis",
        parameters=[DaysInputSerializer],
        responses={200: OutputSerializer, **error_responses(400, *AUTH_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        days = query_input(DaysInputSerializer, request)["days"]
        return Response({"success": True, "days": days, "kpis": kpis_evaluate(days=days)})


# --- Notifications ------------------------------------------------------------


class NotificationListApi(APIView):
    """Admin notifications; by default the pending ones (not acknowledged), newest first."""

    permission_classes = [IsOperator]

    class InputSerializer(PageInputSerializer):
        acknowledged = serializers.BooleanField(required=False, default=False)
        resolved = serializers.BooleanField(required=False, allow_null=True, default=None)
        severity = serializers.ChoiceField(choices=Severity.choices, required=False)
        type = serializers.ChoiceField(choices=NotificationType.choices, required=False)

        class Meta:
            ref_name = "NotificationQuery"

    OutputSerializer = page_envelope(
        "NotificationPage", "notifications", NotificationSerializer(many=True)
    )

    @extend_schema(
        operation_id="notifications_list",
        parameters=[InputSerializer],
        responses={200: OutputSerializer, **error_responses(400, *AUTH_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        params = query_input(self.InputSerializer, request)
        rows = notifications_list(
            acknowledged=params["acknowledged"],
            resolved=params["resolved"],
            severity=params.get("severity"),
            notification_type=params.get("type"),
        ).select_related("acknowledged_by", "resolved_by")
        return page_response(
            request, rows, page=params, key="notifications", serializer_class=NotificationSerializer
        )


class NotificationResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    notification = NotificationSerializer()

    class Meta:
        ref_name = "NotificationResponse"


class NotificationAcknowledgeApi(APIView):
    """Acknowledge a notification: an admin has seen it (it stays open until resolved)."""

    permission_classes = [IsAdmin]

    class InputSerializer(serializers.Serializer):
        comment = serializers.CharField(required=False, allow_blank=True, max_length=2000)

        class Meta:
            ref_name = "AcknowledgeRequest"

    @extend_schema(
        operation_id="notification_acknowledge",
        request=InputSerializer,
        responses={
            200: NotificationResponseSerializer,
            **error_responses(400, *AUTH_ERRORS, 404, 409, 413, 415),
        },
    )
    def post(self, request: Request, notification_id: int) -> Response:
        data = body_input(self.InputSerializer, request)
        notification = _notification_or_404(notification_id)
        notification_acknowledge(
            notification=notification, user=request.user, comment=data.get("comment", "")
        )
        notification = _notification_or_404(notification_id)
        return Response(
            NotificationResponseSerializer({"success": True, "notification": notification}).data
        )


class NotificationResolveApi(APIView):
    """Resolve a notification: the matter is closed (a MANUAL_REQUIRED order goes back to
    automation)."""

    permission_classes = [IsAdmin]

    class InputSerializer(serializers.Serializer):
        note = serializers.CharField(required=False, allow_blank=True, max_length=2000)

        class Meta:
            ref_name = "ResolveRequest"

    @extend_schema(
        operation_id="notification_resolve",
        request=InputSerializer,
        responses={
            200: NotificationResponseSerializer,
            **error_responses(400, *AUTH_ERRORS, 404, 409, 413, 415),
        },
    )
    def post(self, request: Request, notification_id: int) -> Response:
        data = body_input(self.InputSerializer, request)
        notification = _notification_or_404(notification_id)
        notification_resolve(
            notification=notification, user=request.user, note=data.get("note", "")
        )
        notification = _notification_or_404(notification_id)
        return Response(
            NotificationResponseSerializer({"success": True, "notification": notification}).data
        )


# --- Healing actions, cycles, rules -------------------------------------------


class HealingActionListApi(APIView):
    """Every healing, newest first; filter by order, status, issue type, action and date range."""

    permission_classes = [IsOperator]

    class InputSerializer(PageInputSerializer):
        order = id_field(required=False)
        status = serializers.ChoiceField(choices=RecoveryStatus.choices, required=False)
        issue_type = serializers.ChoiceField(choices=IssueType.choices, required=False)
        action = serializers.ChoiceField(choices=RecoveryAction.choices, required=False)
        trigger = serializers.ChoiceField(choices=Trigger.choices, required=False)
        cycle = id_field(required=False)
        detected_from = serializers.DateTimeField(
            required=False, help_text="Detected at or after this time (ISO 8601)."
        )
        detected_to = serializers.DateTimeField(
            required=False, help_text="Detected before this time (ISO 8601)."
        )

        class Meta:
            ref_name = "HealingActionQuery"

        def validate(self, attrs: dict) -> dict:
            start, end = attrs.get("detected_from"), attrs.get("detected_to")
            if start and end and start > end:
                raise serializers.ValidationError(
                    {"detected_to": "must not be before detected_from"}
                )
            return attrs

    OutputSerializer = page_envelope(
        "HealingActionPage", "results", HealingActionSerializer(many=True)
    )

    @extend_schema(
        operation_id="healing_actions_list",
        parameters=[InputSerializer],
        responses={200: OutputSerializer, **error_responses(400, *AUTH_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        params = query_input(self.InputSerializer, request)
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
        return page_response(
            request, rows, page=params, key="results", serializer_class=HealingActionSerializer
        )


class HealingActionDetailApi(APIView):
    """One healing: detection, attempt, result, vendor change."""

    permission_classes = [IsOperator]

    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        healing = HealingActionSerializer()

        class Meta:
            ref_name = "HealingActionResponse"

    @extend_schema(
        operation_id="healing_action_detail",
        responses={200: OutputSerializer, **error_responses(*AUTH_ERRORS, 404)},
    )
    def get(self, request: Request, healing_id: int) -> Response:
        healing = selectors.healing_action_get(healing_id=healing_id)
        if healing is None:
            raise ApiNotFound(f"healing action {healing_id} does not exist", field="id")
        return Response(self.OutputSerializer({"success": True, "healing": healing}).data)


class CycleListApi(APIView):
    """Healing cycles, newest first."""

    permission_classes = [IsOperator]

    class InputSerializer(PageInputSerializer):
        status = serializers.ChoiceField(choices=CycleStatus.choices, required=False)
        trigger = serializers.ChoiceField(choices=Trigger.choices, required=False)

        class Meta:
            ref_name = "CycleQuery"

    OutputSerializer = page_envelope("CyclePage", "results", CycleSerializer(many=True))

    @extend_schema(
        operation_id="cycles_list",
        parameters=[InputSerializer],
        responses={200: OutputSerializer, **error_responses(400, *AUTH_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        params = query_input(self.InputSerializer, request)
        rows = selectors.cycles_list(status=params.get("status"), trigger=params.get("trigger"))
        return page_response(
            request, rows, page=params, key="results", serializer_class=CycleSerializer
        )


class CycleDetailApi(APIView):
    """One healing cycle with its outcome counts."""

    permission_classes = [IsOperator]

    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        cycle = CycleSerializer()

        class Meta:
            ref_name = "CycleResponse"

    @extend_schema(
        operation_id="cycle_detail",
        responses={200: OutputSerializer, **error_responses(*AUTH_ERRORS, 404)},
    )
    def get(self, request: Request, cycle_id: int) -> Response:
        cycle = selectors.cycle_get(cycle_id=cycle_id)
        if cycle is None:
            raise ApiNotFound(f"cycle {cycle_id} does not exist", field="id")
        return Response(self.OutputSerializer({"success": True, "cycle": cycle}).data)


class RuleListApi(APIView):
    """The stuck rules: threshold per status and the escalation ladder."""

    permission_classes = [IsOperator]

    class OutputSerializer(serializers.Serializer):
        class RuleSerializer(serializers.Serializer):
            id = serializers.IntegerField()
            status = serializers.CharField()
            issue_type = serializers.CharField()
            threshold_minutes = serializers.IntegerField()
            ladder = serializers.ListField(child=serializers.CharField())
            enabled = serializers.BooleanField()
            dry_run = serializers.BooleanField()
            updated_at = serializers.DateTimeField()

            class Meta:
                ref_name = "StuckRule"

        success = serializers.BooleanField()
        count = serializers.IntegerField()
        rules = RuleSerializer(many=True)

        class Meta:
            ref_name = "RulesResponse"

    @extend_schema(
        operation_id="rules_list",
        responses={200: OutputSerializer, **error_responses(*AUTH_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        rules = self.OutputSerializer.RuleSerializer(selectors.rules_list(), many=True).data
        return Response({"success": True, "count": len(rules), "rules": rules})


# --- Health -------------------------------------------------------------------


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
