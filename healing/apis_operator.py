"""Operator tools over HTTP (issue 19): what-if replay, bulk redrive, manual actions.

Thin views: validate, call one service, shape the answer. Body keys are
camelCase like the heal endpoint's; an unknown key is a 400 naming it.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import ApiInvalid
from api.inputs import StrictInputSerializer, body_input
from api.permissions import IsOperator
from api.schema import AUTH_ERRORS, error_responses
from healing.models import IssueType, RecoveryAction, RecoveryStatus
from healing.redrive import RedriveFilter, redrive_execute, redrive_preview
from healing.serializers import HealingActionSerializer
from healing.whatif import WhatIfInvalid, rules_whatif

WHATIF_DAYS_MAX = 366


class RulesWhatIfApi(APIView):
    """Replay the last `days` of status history against today's rules and proposed ones.

    `thresholds` maps a status to minutes, `ladders` a status to a list of
    recovery actions. Changes nothing.
    """

    permission_classes = [IsOperator]

    class InputSerializer(StrictInputSerializer):
        days = serializers.IntegerField(min_value=1, max_value=WHATIF_DAYS_MAX, default=7)
        thresholds = serializers.DictField(
            child=serializers.IntegerField(min_value=1), required=False, default=dict
        )
        ladders = serializers.DictField(
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
