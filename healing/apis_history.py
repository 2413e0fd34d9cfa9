"""The audit trail's reads: healings and cycles, listed (paginated) and one by one."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import ApiNotFound
from api.inputs import id_field, query_input
from api.pagination import PageInputSerializer, page_envelope, page_response
from api.permissions import IsOperator
from api.schema import AUTH_ERRORS, error_responses
from healing import selectors
from healing.models import CycleStatus, IssueType, RecoveryAction, RecoveryStatus, Trigger
from healing.serializers import CycleSerializer, HealingActionSerializer


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
