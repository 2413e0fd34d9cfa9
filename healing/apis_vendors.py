"""Vendor health and silences over HTTP (issue 18).

``GET /vendors``: every vendor's health, circuit, open and stuck orders, last
failures, calendar and active silences. ``/silences``: list and read for
OPERATIONS and ADMIN, create, change (extend) and expire early for ADMIN.
Thin views: validate, call one service or selector, shape the answer; body
keys are camelCase like the heal endpoint's, answers snake_case.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import ApiNotFound
from api.inputs import StrictInputSerializer, body_input, id_field, path_id, query_input
from api.permissions import ADMIN, OPERATIONS, RolePermission
from api.schema import AUTH_ERRORS, error_responses
from healing.models import IssueType
from healing.silence_models import Silence
from healing.silences import (
    SilenceSpec,
    silence_create,
    silence_expire,
    silence_is_active,
    silence_update,
    silences_holding,
)
from healing.vendor_health import vendors_health
from orders.models import Buyer, OrderStatus, Vendor


class OperatorsReadAdminsWrite(RolePermission):
    """ADMIN or OPERATIONS may read; only ADMIN may write."""

    roles: tuple[str, ...] = (ADMIN, OPERATIONS)

    def has_permission(self, request: Any, view: Any) -> bool:
        self.roles = (ADMIN, OPERATIONS) if request.method in SAFE_METHODS else (ADMIN,)
        return super().has_permission(request, view)


# --- Vendors --------------------------------------------------------------------


class VendorHealthListApi(APIView):
    """Every vendor: health, circuit state, open and stuck orders, calendar, silences."""

    permission_classes = [OperatorsReadAdminsWrite]

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField(source="vendor.pk")
        name = serializers.CharField(source="vendor.name")
        is_active = serializers.BooleanField(source="vendor.is_active")
        health = serializers.CharField()
        circuit_state = serializers.CharField(source="state")
        circuit = serializers.SerializerMethodField()
        open_orders = serializers.IntegerField()
        stuck_orders = serializers.IntegerField()
        last_failures = serializers.ListField(child=serializers.DictField())
        calendar = serializers.SerializerMethodField()
        active_silences = serializers.ListField(source="silences", child=serializers.DictField())

        class Meta:
            ref_name = "VendorHealth"

        def get_circuit(self, row: Any) -> dict[str, Any]:
            circuit = row.circuit
            if circuit is None:
                return {"failures": 0}
            return {
                "failures": circuit.failures,
                "opened_at": circuit.opened_at,
                "retry_at": circuit.retry_at,
                "last_failure_at": circuit.last_failure_at,
                "last_error": circuit.last_error,
                "closed_at": circuit.closed_at,
            }

        def get_calendar(self, row: Any) -> dict[str, Any]:
            vendor = row.vendor
            return {
                "time_zone": vendor.time_zone,
                "working_hours": vendor.working_hours,
                "holidays": vendor.holidays,
                "always_open": not (vendor.working_hours or vendor.holidays),
                "open_now": row.open_now,
            }

    class EnvelopeSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        vendors = serializers.ListField(child=serializers.DictField())

        class Meta:
            ref_name = "VendorHealthList"

    @extend_schema(
        operation_id="vendors_health",
        responses={200: EnvelopeSerializer, **error_responses(*AUTH_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        rows = vendors_health()
        return Response({"success": True, "vendors": self.OutputSerializer(rows, many=True).data})


# --- Silences -------------------------------------------------------------------


@extend_schema_field(
    {
        "type": "string",
        "pattern": r"^\d{2}:\d{2}:\d{2}(\.\d{1,6})?$",
        "nullable": True,
        "description": "A wall-clock time in the silence's time_zone (no offset).",
    }
)
class _LocalTimeField(serializers.TimeField):
    """Documented as what it is: OpenAPI's ``format: time`` demands an offset,
    and a recurrence time is local to the silence's zone (issue 20, ST108)."""


class SilenceSerializer(serializers.ModelSerializer):
    recurrence_start = _LocalTimeField(allow_null=True)
    recurrence_end = _LocalTimeField(allow_null=True)
    active = serializers.SerializerMethodField()
    holding = serializers.SerializerMethodField()
    owner = serializers.CharField(source="owner.username", default=None)

    class Meta:
        model = Silence
        fields = [
            "id",
            "vendor_id",
            "buyer_id",
            "status",
            "issue_type",
            "starts_at",
            "ends_at",
            "recurrence_weekdays",
            "recurrence_start",
            "recurrence_end",
            "time_zone",
            "owner",
            "comment",
            "active",
            "holding",
            "created_at",
            "updated_at",
        ]

    def get_active(self, silence: Silence) -> bool:
        return silence_is_active(silence=silence, now=self.context["now"])

    def get_holding(self, silence: Silence) -> int:
        return int(self.context["holding"].get(silence.pk, 0))


class SilenceEnvelope(serializers.Serializer):
    success = serializers.BooleanField()
    silence = SilenceSerializer()

    class Meta:
        ref_name = "SilenceResponse"


class SilenceListEnvelope(serializers.Serializer):
    success = serializers.BooleanField()
    silences = SilenceSerializer(many=True)

    class Meta:
        ref_name = "SilenceList"


def _silences_out(silences: list[Silence], *, many: bool = True) -> Any:
    context = {"now": timezone.now(), "holding": silences_holding(silences=silences)}
    data = SilenceSerializer(silences, many=True, context=context).data
    return data if many else data[0]


def _matchers_exist(data: dict[str, Any]) -> None:
    """A vendor or buyer that does not exist is a 404 naming the field (not a
    foreign-key error at commit, a 500)."""
    for key, model, field in (("vendor_id", Vendor, "vendorId"), ("buyer_id", Buyer, "buyerId")):
        pk = data.get(key)
        if pk is not None and not model.objects.filter(pk=pk).exists():
            raise ApiNotFound(f"{field.removesuffix('Id')} {pk} does not exist", field=field)


def _silence_or_404(silence_id: str | int) -> Silence:
    pk = path_id(silence_id, field="silenceId")
    silence = Silence.objects.select_related("owner").filter(pk=pk).first()
    if silence is None:
        raise ApiNotFound(f"silence {pk} not found", field="silenceId")
    return silence


@extend_schema_field({"type": "string", "enum": sorted(available_timezones())})
class _TimeZoneField(serializers.CharField):
    """An IANA time zone name (``healing.silences`` loads it with ZoneInfo)."""


# Not blank once trimmed (DRF trims; ``healing.silences`` wants a reason).
@extend_schema_field(
    {
        "type": "string",
        "minLength": 1,
        "maxLength": 2000,
        "pattern": r"^[^\u0000]*[^\s\u0000][^\u0000]*$",
    }
)
class _CommentField(serializers.CharField):
    pass


_MATCHERS = ("vendorId", "buyerId", "status", "issueType")


class _SilenceFields(StrictInputSerializer):
    vendorId = id_field(required=False, allow_null=True, source="vendor_id")
    buyerId = id_field(required=False, allow_null=True, source="buyer_id")
    status = serializers.ChoiceField(choices=OrderStatus.choices, required=False)
    issueType = serializers.ChoiceField(
        choices=IssueType.choices, required=False, source="issue_type"
    )
    startsAt = serializers.DateTimeField(required=False, source="starts_at")
    endsAt = serializers.DateTimeField(required=False, source="ends_at")
    recurrenceWeekdays = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6),
        required=False,
        source="recurrence_weekdays",
    )
    recurrenceStart = serializers.TimeField(
        required=False, allow_null=True, source="recurrence_start"
    )
    recurrenceEnd = serializers.TimeField(required=False, allow_null=True, source="recurrence_end")
    timeZone = _TimeZoneField(required=False, max_length=64, source="time_zone")
    comment = _CommentField(required=False, max_length=2000)


class SilenceListApi(APIView):
    """GET: the silences (``?active=true`` for the ones holding orders now).
    POST (ADMIN): create one; the caller is its owner."""

    permission_classes = [OperatorsReadAdminsWrite]

    class FilterSerializer(serializers.Serializer):
        active = serializers.BooleanField(required=False)
        vendor = id_field(required=False)

    class InputSerializer(_SilenceFields):
        """`endsAt` must be after `startsAt` (default: now), a 400 otherwise."""

        endsAt = serializers.DateTimeField(source="ends_at")
        comment = _CommentField(max_length=2000)
        # At least one matcher, not null (api.schema.StrictInputScheme merges this).
        openapi_extra = {
            "anyOf": [
                # vendorId and buyerId may be null, which matches nothing.
                {"required": [name], "properties": {name: {"type": "integer"}}}
                if name in ("vendorId", "buyerId")
                else {"required": [name]}
                for name in _MATCHERS
            ]
        }

        class Meta:
            ref_name = "SilenceCreateRequest"

    @extend_schema(
        operation_id="silences_list",
        parameters=[FilterSerializer],
        responses={200: SilenceListEnvelope, **error_responses(400, *AUTH_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        params = query_input(self.FilterSerializer, request)
        rows = Silence.objects.select_related("owner").order_by("-starts_at", "-id")
        if params.get("vendor"):
            rows = rows.filter(vendor_id=params["vendor"])
        silences = list(rows[:500])
        if params.get("active") is not None:
            now = timezone.now()
            silences = [
                s for s in silences if silence_is_active(silence=s, now=now) == params["active"]
            ]
        return Response({"success": True, "silences": _silences_out(silences)})

    @extend_schema(
        operation_id="silences_create",
        request=InputSerializer,
        responses={201: SilenceEnvelope, **error_responses(400, 404, *AUTH_ERRORS)},
    )
    def post(self, request: Request) -> Response:
        data = body_input(self.InputSerializer, request)
        _matchers_exist(data)
        data.setdefault("starts_at", timezone.now())
        data["recurrence_weekdays"] = tuple(data.get("recurrence_weekdays", ()))
        for key in ("vendor_id", "buyer_id"):
            if data.get(key) is None:
                data.pop(key, None)
        silence = silence_create(spec=SilenceSpec(**data), owner=request.user)
        return Response(
            {"success": True, "silence": _silences_out([silence], many=False)}, status=201
        )


class SilenceDetailApi(APIView):
    """GET: one silence. PATCH (ADMIN): change it — a later ``endsAt`` extends it."""

    permission_classes = [OperatorsReadAdminsWrite]

    class InputSerializer(_SilenceFields):
        class Meta:
            ref_name = "SilenceUpdateRequest"

    @extend_schema(
        operation_id="silences_get",
        responses={200: SilenceEnvelope, **error_responses(400, 404, *AUTH_ERRORS)},
    )
    def get(self, request: Request, silence_id: str) -> Response:
        silence = _silence_or_404(silence_id)
        return Response({"success": True, "silence": _silences_out([silence], many=False)})

    @extend_schema(
        operation_id="silences_update",
        request=InputSerializer,
        responses={200: SilenceEnvelope, **error_responses(400, 404, *AUTH_ERRORS)},
    )
    def patch(self, request: Request, silence_id: str) -> Response:
        silence = _silence_or_404(silence_id)
        changes = body_input(self.InputSerializer, request)
        _matchers_exist(changes)
        if "recurrence_weekdays" in changes:
            changes["recurrence_weekdays"] = tuple(changes["recurrence_weekdays"])
        silence = silence_update(silence_id=silence.pk, actor=request.user, changes=changes)
        return Response({"success": True, "silence": _silences_out([silence], many=False)})


class SilenceExpireApi(APIView):
    """POST (ADMIN): end a silence now; the next cycle heals what it held."""

    permission_classes = [OperatorsReadAdminsWrite]

    class InputSerializer(StrictInputSerializer):
        """No body fields: an empty body or `{}`."""

        class Meta:
            ref_name = "SilenceExpireRequest"

    @extend_schema(
        operation_id="silences_expire",
        request=InputSerializer,
        responses={200: SilenceEnvelope, **error_responses(400, 404, *AUTH_ERRORS)},
    )
    def post(self, request: Request, silence_id: str) -> Response:
        silence = _silence_or_404(silence_id)
        body_input(self.InputSerializer, request)
        silence = silence_expire(silence_id=silence.pk, actor=request.user)
        return Response({"success": True, "silence": _silences_out([silence], many=False)})
