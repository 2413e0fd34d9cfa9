"""Operator tools over HTTP (issue 19): what-if replay, bulk redrive, manual actions.

Thin views: validate, call one service, shape the answer. Body keys are
camelCase like the heal endpoint's; an unknown key is a 400 naming it.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import ApiInvalid, ApiNotFound
from api.inputs import MAX_ID, StrictInputSerializer, body_input, path_id
from api.permissions import IsAdmin, IsOperator
from api.schema import AUTH_ERRORS, error_responses
from healing.apis import order_get_or_404
from healing.models import ISSUE_TYPE_FOR_STATUS, IssueType, RecoveryAction, RecoveryStatus
from healing.operator_actions import (
    ManualOutcome,
    order_cancel_manual,
    order_heal_manual,
    order_reassign_manual,
)
from healing.redrive import RedriveFilter, redrive_execute, redrive_preview
from healing.serializers import HealingActionSerializer
from healing.whatif import WhatIfInvalid, rules_whatif
from orders.models import Vendor

WHATIF_DAYS_MAX = 366
# Ten years of minutes: a longer threshold changes nothing in a replay of at
# most WHATIF_DAYS_MAX days, and one of millennia overflowed the date maths (500).
WHATIF_THRESHOLD_MAX = 10 * 366 * 24 * 60


def _per_rule_status(value: Any, *, processing: Any = None) -> dict[str, Any]:
    """A map keyed by the statuses a stuck rule exists for (anything else is a 400)."""
    return {
        "type": "object",
        "properties": {
            status: processing if processing and status == "PROCESSING" else value
            for status in ISSUE_TYPE_FOR_STATUS
        },
        "additionalProperties": False,
    }


def _ladder(actions: list[str]) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string", "enum": actions}}


@extend_schema_field(
    _per_rule_status({"type": "integer", "minimum": 1, "maximum": WHATIF_THRESHOLD_MAX})
)
class _ThresholdsField(serializers.DictField):
    pass


# PROCESSING and later are never reassigned (StuckRule.clean).
@extend_schema_field(
    _per_rule_status(
        _ladder(RecoveryAction.values),
        processing=_ladder(
            [a for a in RecoveryAction.values if a != RecoveryAction.REASSIGN_VENDOR]
        ),
    )
)
class _LaddersField(serializers.DictField):
    pass


class RulesWhatIfApi(APIView):
    """Replay the last `days` of status history against today's rules and proposed ones.

    `thresholds` maps a status to minutes, `ladders` a status to a list of
    recovery actions. Changes nothing.
    """

    permission_classes = [IsOperator]

    class InputSerializer(StrictInputSerializer):
        days = serializers.IntegerField(min_value=1, max_value=WHATIF_DAYS_MAX, default=7)
        thresholds = _ThresholdsField(
            child=serializers.IntegerField(min_value=1, max_value=WHATIF_THRESHOLD_MAX),
            required=False,
            default=dict,
        )
        ladders = _LaddersField(
            child=serializers.ListField(
                child=serializers.ChoiceField(choices=RecoveryAction.choices)
            ),
            required=False,
            default=dict,
        )

        class Meta:
            ref_name = "RulesWhatIfRequest"

    @extend_schema(
        operation_id="rules_what_if",
        request=InputSerializer,
        responses={200: dict, **error_responses(400, *AUTH_ERRORS)},
    )
    def post(self, request: Request) -> Response:
        data = body_input(self.InputSerializer, request)
        try:
            report = rules_whatif(
                days=data["days"],
                thresholds={k.upper(): v for k, v in data["thresholds"].items()},
                ladders={k.upper(): v for k, v in data["ladders"].items()},
            )
        except WhatIfInvalid as exc:
            raise ApiInvalid(str(exc)) from None
        return Response({"success": True, **report})


class RedriveApi(APIView):
    """Re-heal the orders of a filter: `dryRun: true` previews (count, sample, token);
    the same filter with the token and `dryRun: false` starts the healings."""

    permission_classes = [IsOperator]

    class InputSerializer(StrictInputSerializer):
        recoveryStatus = serializers.ChoiceField(
            choices=[RecoveryStatus.FAILED, RecoveryStatus.MANUAL_REQUIRED]
        )
        vendorId = serializers.IntegerField(min_value=1, required=False)
        issueType = serializers.ChoiceField(choices=IssueType.choices, required=False)
        detectedFrom = serializers.DateTimeField(required=False)
        detectedTo = serializers.DateTimeField(required=False)
        dryRun = serializers.BooleanField(default=True)
        token = serializers.CharField(required=False, max_length=500)

        # An execution (dryRun false) carries the dry run's token.
        openapi_extra = {
            "anyOf": [
                {"properties": {"dryRun": {"type": "boolean", "enum": [True]}}},
                {"required": ["token"]},
            ]
        }

        class Meta:
            ref_name = "RedriveRequest"

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if not attrs["dryRun"] and not attrs.get("token"):
                raise serializers.ValidationError(
                    {"token": "an execution needs the dry run's token"}
                )
            return attrs

    @extend_schema(
        operation_id="redrive",
        request=InputSerializer,
        responses={200: dict, **error_responses(400, *AUTH_ERRORS, 409)},
    )
    def post(self, request: Request) -> Response:
        data = body_input(self.InputSerializer, request)
        spec = RedriveFilter(
            recovery_status=data["recoveryStatus"],
            vendor_id=data.get("vendorId"),
            issue_type=data.get("issueType"),
            detected_from=data.get("detectedFrom"),
            detected_to=data.get("detectedTo"),
        )
        if data["dryRun"]:
            preview = redrive_preview(spec=spec)
            return Response(
                {
                    "success": True,
                    "dryRun": True,
                    "count": preview.count,
                    "sample": HealingActionSerializer(preview.sample, many=True).data,
                    "token": preview.token,
                    "expiresInSeconds": preview.expires_in_seconds,
                }
            )
        ids = redrive_execute(spec=spec, token=data["token"], user=request.user)
        return Response({"success": True, "dryRun": False, "count": len(ids), "healingIds": ids})


# --- Manual actions for an order on manual hold (ADMIN) ---------------------------


def _manual_answer(outcome: ManualOutcome) -> Response:
    body: dict[str, Any] = {
        "success": True,
        "order": {
            "id": outcome.order.pk,
            "number": outcome.order.number,
            "status": outcome.order.status,
            "vendorId": outcome.order.vendor_id,
        },
        "holdsResolved": outcome.holds_resolved,
        "notificationsResolved": outcome.notifications_resolved,
    }
    if outcome.healing is not None:
        body["healing"] = HealingActionSerializer(outcome.healing).data
        body["retryScheduled"] = outcome.retry_scheduled
    return Response(body)


class _NoteInput(StrictInputSerializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")


class OrderCancelManualApi(APIView):
    """Cancel an order on manual hold and refund its credit once; resolves the hold."""

    permission_classes = [IsAdmin]

    class InputSerializer(_NoteInput):
        class Meta:
            ref_name = "ManualCancelRequest"

    @extend_schema(
        operation_id="manual_cancel",
        request=InputSerializer,
        responses={200: dict, **error_responses(400, *AUTH_ERRORS, 404, 409)},
    )
    def post(self, request: Request, order_id: str) -> Response:
        order = order_get_or_404(order_id=path_id(order_id, field="orderId"))
        data = body_input(self.InputSerializer, request)
        return _manual_answer(
            order_cancel_manual(order=order, user=request.user, note=data["note"])
        )


class OrderReassignManualApi(APIView):
    """Give an order on manual hold to a chosen vendor that never had it; resolves the hold."""

    permission_classes = [IsAdmin]

    class InputSerializer(_NoteInput):
        vendorId = serializers.IntegerField(min_value=1, max_value=MAX_ID)

        class Meta:
            ref_name = "ManualReassignRequest"

    @extend_schema(
        operation_id="manual_reassign",
        request=InputSerializer,
        responses={200: dict, **error_responses(400, *AUTH_ERRORS, 404, 409)},
    )
    def post(self, request: Request, order_id: str) -> Response:
        order = order_get_or_404(order_id=path_id(order_id, field="orderId"))
        data = body_input(self.InputSerializer, request)
        vendor = Vendor.objects.filter(pk=data["vendorId"]).first()
        if vendor is None:
            raise ApiNotFound(f"vendor {data['vendorId']} does not exist", field="vendorId")
        return _manual_answer(
            order_reassign_manual(order=order, vendor=vendor, user=request.user, note=data["note"])
        )


class OrderHealManualApi(APIView):
    """Hand an order on manual hold back and heal it now with the chosen action."""

    permission_classes = [IsAdmin]

    class InputSerializer(StrictInputSerializer):
        recoveryAction = serializers.ChoiceField(choices=RecoveryAction.choices)

        class Meta:
            ref_name = "ManualHealRequest"

    @extend_schema(
        operation_id="manual_heal",
        request=InputSerializer,
        responses={200: dict, **error_responses(400, *AUTH_ERRORS, 404, 409)},
    )
    def post(self, request: Request, order_id: str) -> Response:
        order = order_get_or_404(order_id=path_id(order_id, field="orderId"))
        data = body_input(self.InputSerializer, request)
        return _manual_answer(
            order_heal_manual(order=order, action=data["recoveryAction"], user=request.user)
        )
