"""The notification API: list, acknowledge, resolve (one APIView per operation)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import ApiNotFound
from api.inputs import StrictInputSerializer, body_input, query_input
from api.pagination import PageInputSerializer, page_envelope, page_response
from api.permissions import IsAdmin, IsOperator
from api.schema import AUTH_ERRORS, error_responses
from notifications.models import AdminNotification, NotificationType, Severity
from notifications.selectors import notification_get, notifications_list
from notifications.services import notification_acknowledge, notification_resolve


def notification_get_or_404(*, notification_id: int) -> AdminNotification:
    notification = notification_get(notification_id=notification_id)
    if notification is None:
        raise ApiNotFound(f"notification {notification_id} does not exist", field="id")
    return notification


class NotificationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    notification_type = serializers.CharField()
    severity = serializers.CharField()
    title = serializers.CharField()
    message = serializers.CharField()
    details = serializers.JSONField()
    order_id = serializers.IntegerField(allow_null=True)
    healing_action_id = serializers.IntegerField(allow_null=True)
    occurrences = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    last_occurred_at = serializers.DateTimeField()
    sent = serializers.BooleanField()
    delivery_method = serializers.CharField(allow_blank=True)
    acknowledged = serializers.BooleanField()
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    acknowledged_by = serializers.SerializerMethodField()
    acknowledgement_comment = serializers.CharField(allow_blank=True)
    resolved = serializers.BooleanField()
    resolved_at = serializers.DateTimeField(allow_null=True)
    resolved_by = serializers.SerializerMethodField()
    resolution_note = serializers.CharField(allow_blank=True)

    class Meta:
        ref_name = "AdminNotification"

    def get_acknowledged_by(self, obj: Any) -> str | None:
        return obj.acknowledged_by.get_username() if obj.acknowledged_by_id else None

    def get_resolved_by(self, obj: Any) -> str | None:
        return obj.resolved_by.get_username() if obj.resolved_by_id else None


_DATETIME = serializers.DateTimeField()


def _moment(value: Any) -> str | None:
    return None if value is None else _DATETIME.to_representation(value)


def notification_row(obj: Any) -> dict[str, Any]:
    """:class:`NotificationSerializer`'s representation, built without its
    per-field machinery: the list serves pages of these on every poll, and the
    serializer was a fifth of the web workers' CPU under load (issue 21 item 7).
    tests/notifications/test_list_rows.py holds the two to the same output."""
    return {
        "id": obj.id,
        "notification_type": obj.notification_type,
        "severity": obj.severity,
        "title": obj.title,
        "message": obj.message,
        "details": obj.details,
        "order_id": obj.order_id,
        "healing_action_id": obj.healing_action_id,
        "occurrences": obj.occurrences,
        "created_at": _moment(obj.created_at),
        "last_occurred_at": _moment(obj.last_occurred_at),
        "sent": obj.sent,
        "delivery_method": obj.delivery_method,
        "acknowledged": obj.acknowledged,
        "acknowledged_at": _moment(obj.acknowledged_at),
        "acknowledged_by": (obj.acknowledged_by.get_username() if obj.acknowledged_by_id else None),
        "acknowledgement_comment": obj.acknowledgement_comment,
        "resolved": obj.resolved,
        "resolved_at": _moment(obj.resolved_at),
        "resolved_by": obj.resolved_by.get_username() if obj.resolved_by_id else None,
        "resolution_note": obj.resolution_note,
    }


class NotificationResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    notification = NotificationSerializer()

    class Meta:
        ref_name = "NotificationResponse"


class NotificationListApi(APIView):
    """Admin notifications, newest first; by default the pending ones (neither
    acknowledged nor resolved)."""

    permission_classes = [IsOperator]

    class InputSerializer(PageInputSerializer):
        # Not nullable: an empty or "null" value meant the default anyway, and the
        # schema cannot spell a null in a query string (issue 20, ST201).
        acknowledged = serializers.BooleanField(
            required=False, help_text="Default: false (pending only)."
        )
        resolved = serializers.BooleanField(
            required=False, help_text="Default: false (pending only)."
        )
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
        # Only the filters given: the selector's defaults define "pending".
        flags = {key: params[key] for key in ("acknowledged", "resolved") if key in params}
        rows = notifications_list(
            severity=params.get("severity"), notification_type=params.get("type"), **flags
        )
        # The rows name their order and healing by id only: joining those two
        # wide tables cost more than the rest of the page.
        rows = rows.select_related(None).select_related("acknowledged_by", "resolved_by")
        return page_response(request, rows, page=params, key="notifications", row=notification_row)


class NotificationAcknowledgeApi(APIView):
    """Acknowledge a notification: an admin has seen it (it stays open until resolved)."""

    permission_classes = [IsAdmin]

    class InputSerializer(StrictInputSerializer):
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
        notification_acknowledge(
            notification=notification_get_or_404(notification_id=notification_id),
            user=request.user,
            comment=data.get("comment", ""),
        )
        notification = notification_get_or_404(notification_id=notification_id)
        return Response(
            NotificationResponseSerializer({"success": True, "notification": notification}).data
        )


class NotificationResolveApi(APIView):
    """Resolve a notification: the matter is closed (a MANUAL_REQUIRED order goes back to
    automation)."""

    permission_classes = [IsAdmin]

    class InputSerializer(StrictInputSerializer):
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
        notification_resolve(
            notification=notification_get_or_404(notification_id=notification_id),
            user=request.user,
            note=data.get("note", ""),
        )
        notification = notification_get_or_404(notification_id=notification_id)
        return Response(
            NotificationResponseSerializer({"success": True, "notification": notification}).data
        )
