"""The vendor API, ``/api/v1/vendor/``: a vendor reads and moves its own orders.

Authenticated by ``Authorization: Api-Key <key>`` (never staff JWT). Every
POST takes an optional ``Idempotency-Key``. Another vendor's order is a 404.
"""

from __future__ import annotations

from typing import Any, ClassVar

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.inputs import StrictInputSerializer, body_input, path_id
from api.schema import error_responses
from orders import vendor_actions
from orders.authentication import IsVendor, VendorApiKeyAuthentication, VendorClient
from orders.idempotency import HEADER, idempotent
from orders.models import Vendor
from orders.schema import IDEMPOTENCY_KEY_SCHEMA, idempotency_errors
from orders.selectors import vendor_orders_list
from orders.serializers import VendorOrderSerializer

TAG = "vendor"

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    HEADER,
    IDEMPOTENCY_KEY_SCHEMA,
    OpenApiParameter.HEADER,
    required=False,
    description="Optional. A retry with the same key and body replays the first answer.",
)

_ORDER_EXAMPLE = {
    "id": 42,
    "number": "ORD-20261201-1A2B3C4D",
    "status": "CONFIRMED",
    "amount": "250.00",
    "currency": "USD",
    "payment_method": "CREDIT",
    "created_at": "2026-12-01T09:00:00Z",
    "status_changed_at": "2026-12-01T09:05:00Z",
    "act_by": "2026-12-01T10:05:00Z",
}


class _VendorApi(APIView):
    authentication_classes = [VendorApiKeyAuthentication]
    permission_classes = [IsVendor]


class _OrderEnvelope(serializers.Serializer):
    success = serializers.BooleanField()
    order = VendorOrderSerializer()

    class Meta:
        ref_name = "VendorOrderEnvelope"


class _DeclinedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.CharField()
    status = serializers.ChoiceField(choices=["DECLINED"])

    class Meta:
        ref_name = "VendorDeclinedOrder"


class _DeclineEnvelope(serializers.Serializer):
    success = serializers.BooleanField()
    order = _DeclinedSerializer()

    class Meta:
        ref_name = "VendorDeclineResult"


class _OrderListEnvelope(serializers.Serializer):
    success = serializers.BooleanField()
    count = serializers.IntegerField()
    orders = VendorOrderSerializer(many=True)

    class Meta:
        ref_name = "VendorOrderList"


def _vendor(request: Request) -> Vendor:
    user = request.user
    assert isinstance(user, VendorClient)  # IsVendor let the request in
    return user.vendor


def _order_response(order: Any) -> Response:
    return Response({"success": True, "order": VendorOrderSerializer(order).data})


class VendorOrderListApi(_VendorApi):
    class InputSerializer(StrictInputSerializer):
        limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=100)
        offset = serializers.IntegerField(required=False, min_value=0, max_value=10**9, default=0)

        class Meta:
            ref_name = "VendorOrderListQuery"

    @extend_schema(
        tags=[TAG],
        operation_id="vendor_orders_list",
        summary="Your open orders (offers to confirm included)",
        parameters=[InputSerializer],
        responses={200: _OrderListEnvelope, **error_responses(400, 401)},
        examples=[
            OpenApiExample(
                "Open orders",
                value={"success": True, "count": 1, "orders": [_ORDER_EXAMPLE]},
                response_only=True,
            )
        ],
    )
    def get(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.query_params.dict())
        serializer.is_valid(raise_exception=True)
        page = serializer.validated_data
        rows = vendor_orders_list(vendor_id=_vendor(request).pk)
        window = rows[page["offset"] : page["offset"] + page["limit"]]
        return Response(
            {
                "success": True,
                "count": rows.count(),
                "orders": VendorOrderSerializer(window, many=True).data,
            }
        )


class VendorOrderDetailApi(_VendorApi):
    @extend_schema(
        tags=[TAG],
        operation_id="vendor_order_get",
        summary="One of your orders",
        responses={200: _OrderEnvelope, **error_responses(400, 401, 404)},
        examples=[
            OpenApiExample(
                "An order", value={"success": True, "order": _ORDER_EXAMPLE}, response_only=True
            )
        ],
    )
    def get(self, request: Request, order_id: str) -> Response:
        order = vendor_actions.vendor_order_get_or_404(
            vendor=_vendor(request), order_id=path_id(order_id, field="orderId")
        )
        return _order_response(order)


class _VendorOrderActionApi(_VendorApi):
    action: ClassVar[str] = ""

    @idempotent()
    def post(self, request: Request, order_id: str) -> Response:
        order = vendor_actions.vendor_order_act(
            vendor=_vendor(request),
            order_id=path_id(order_id, field="orderId"),
            action=self.action,
        )
        return _order_response(order)


def _action_schema(action: str, to_status: str, needs: str) -> Any:
    return extend_schema(
        tags=[TAG],
        operation_id=f"vendor_order_{action}",
        summary=f"{action.capitalize()} the order ({needs} -> {to_status})",
        description=(
            f"Moves your order from {needs} to {to_status}. Any other current status "
            "is a 409 whose message names it."
        ),
        request=None,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            200: _OrderEnvelope,
            **error_responses(400, 401, 404, 413, 415),
            **idempotency_errors(),
        },
        examples=[
            OpenApiExample(
                f"{action} done",
                value={"success": True, "order": {**_ORDER_EXAMPLE, "status": to_status}},
                response_only=True,
            )
        ],
    )


def _action_view(action: str) -> type[_VendorOrderActionApi]:
    to_status, needs = vendor_actions.VENDOR_ACTIONS[action]
    schema = _action_schema(action, to_status, needs)

    # A function of its own per action: the schema annotation lives on it.
    def post(self: _VendorOrderActionApi, request: Request, order_id: str) -> Response:
        return _VendorOrderActionApi.post(self, request, order_id)

    post = schema(post)
    name = f"VendorOrder{action.capitalize()}Api"
    return type(name, (_VendorOrderActionApi,), {"action": action, "post": post})


VendorOrderConfirmApi = _action_view("confirm")
VendorOrderAcceptApi = _action_view("accept")
VendorOrderStartApi = _action_view("start")
VendorOrderShipApi = _action_view("ship")
VendorOrderDeliverApi = _action_view("deliver")


class VendorOrderDeclineApi(_VendorApi):
    class InputSerializer(StrictInputSerializer):
        reason = serializers.CharField(max_length=400, allow_blank=False, trim_whitespace=True)

        class Meta:
            ref_name = "VendorOrderDeclineInput"

    @extend_schema(
        tags=[TAG],
        operation_id="vendor_order_decline",
        summary="Give the order back (PENDING, CONFIRMED or ACCEPTED)",
        description=(
            "Releases the order for good: it is reassigned to another vendor at once "
            "and never offered to you again."
        ),
        request=InputSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            200: _DeclineEnvelope,
            **error_responses(400, 401, 404, 413, 415),
            **idempotency_errors(),
        },
        examples=[
            OpenApiExample("Decline", value={"reason": "out of stock"}, request_only=True),
        ],
    )
    @idempotent()
    def post(self, request: Request, order_id: str) -> Response:
        data = body_input(self.InputSerializer, request)
        order = vendor_actions.vendor_order_decline(
            vendor=_vendor(request),
            order_id=path_id(order_id, field="orderId"),
            reason=data["reason"],
        )
        return Response(
            {
                "success": True,
                "order": {
                    "id": order.pk,
                    "number": order.number,
                    "status": "DECLINED",
                },
            }
        )
