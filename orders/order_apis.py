"""The order API for the marketplace, ``/api/v1/orders``: intake, read, cancel.

Callers are service accounts of the MARKETPLACE group (or ADMIN) with a JWT.
``POST /api/v1/orders`` requires an ``Idempotency-Key``; cancel takes one.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import ApiNotFound
from api.inputs import StrictInputSerializer, body_input, id_field, path_id
from api.schema import error_responses
from orders import services
from orders.authentication import IsMarketplace
from orders.idempotency import HEADER, idempotent
from orders.intake import order_place
from orders.models import Order, PaymentMethod
from orders.schema import IDEMPOTENCY_KEY_SCHEMA, idempotency_errors
from orders.selectors import order_get, order_healings, order_history
from orders.serializers import (
    MarketplaceOrderSerializer,
    OrderHealingSerializer,
    StatusChangeSerializer,
)

TAG = "orders"

_ORDER_EXAMPLE = {
    "id": 42,
    "number": "ORD-20261201-1A2B3C4D",
    "status": "PENDING",
    "buyer_id": 7,
    "vendor_id": 3,
    "amount": "250.00",
    "currency": "USD",
    "payment_method": "CREDIT",
    "created_at": "2026-12-01T09:00:00Z",
    "status_changed_at": "2026-12-01T09:00:00Z",
}


class _OrderEnvelope(serializers.Serializer):
    success = serializers.BooleanField()
    order = MarketplaceOrderSerializer()

    class Meta:
        ref_name = "MarketplaceOrderEnvelope"


class _OrderDetailEnvelope(serializers.Serializer):
    success = serializers.BooleanField()
    order = MarketplaceOrderSerializer()
    history = StatusChangeSerializer(many=True)
    healings = OrderHealingSerializer(many=True)

    class Meta:
        ref_name = "MarketplaceOrderDetail"


def _order_or_404(order_id: str) -> Order:
    order = order_get(order_id=path_id(order_id, field="orderId"))
    if order is None:
        raise ApiNotFound(f"order {order_id} does not exist", field="orderId")
    return order


class _MarketplaceApi(APIView):
    permission_classes = [IsMarketplace]


class OrderCreateApi(_MarketplaceApi):
    class InputSerializer(StrictInputSerializer):
        buyerId = id_field()
        amount = serializers.DecimalField(
            max_digits=14, decimal_places=2, min_value=0, max_value=10**11
        )
        currency = serializers.RegexField(r"^[A-Z]{3}$", required=False, default="USD")
        paymentMethod = serializers.ChoiceField(choices=PaymentMethod.choices)
        vendorId = id_field(required=False, allow_null=True, default=None)

        class Meta:
            ref_name = "OrderCreateInput"

    @extend_schema(
        tags=[TAG],
        operation_id="orders_create",
        summary="Place an order (Idempotency-Key required)",
        description=(
            "Creates a PENDING order. CREDIT charges the buyer's credit account exactly "
            "once; an amount past the buyer's available credit (limit plus ledger "
            "balance), or CREDIT without a credit account, is a 409 "
            "`credit_limit_exceeded` naming the field, and nothing is written. "
            "Without `vendorId` the best-ranked vendor gets it, or none when none "
            "is free (healing then finds it). The chosen vendor is sent an `order.offer` "
            "webhook. A retry with the same `Idempotency-Key` and body replays the "
            "first answer; the same key with another body is a 422."
        ),
        request=InputSerializer,
        parameters=[
            OpenApiParameter(
                HEADER, IDEMPOTENCY_KEY_SCHEMA, OpenApiParameter.HEADER, required=True
            ),
        ],
        responses={
            201: _OrderEnvelope,
            **error_responses(400, 401, 403, 413, 415),
            **idempotency_errors(),
        },
        examples=[
            OpenApiExample(
                "Order paid by credit",
                value={
                    "buyerId": 7,
                    "amount": "250.00",
                    "currency": "USD",
                    "paymentMethod": "CREDIT",
                },
                request_only=True,
            ),
            OpenApiExample(
                "Created",
                value={"success": True, "order": _ORDER_EXAMPLE},
                response_only=True,
                status_codes=["201"],
            ),
        ],
    )
    @idempotent(required=True)
    def post(self, request: Request) -> Response:
        data = body_input(self.InputSerializer, request)
        order = order_place(
            buyer_id=data["buyerId"],
            total=data["amount"],
            currency=data["currency"],
            payment_method=data["paymentMethod"],
            vendor_id=data["vendorId"],
            actor=services.Actor.user(request.user),
        )
        return Response(
            {"success": True, "order": MarketplaceOrderSerializer(order).data}, status=201
        )


class OrderDetailApi(_MarketplaceApi):
    @extend_schema(
        tags=[TAG],
        operation_id="orders_get",
        summary="An order with its status history and healings",
        responses={200: _OrderDetailEnvelope, **error_responses(400, 401, 403, 404)},
    )
    def get(self, request: Request, order_id: str) -> Response:
        order = _order_or_404(order_id)
        return Response(
            {
                "success": True,
                "order": MarketplaceOrderSerializer(order).data,
                "history": StatusChangeSerializer(order_history(order=order), many=True).data,
                "healings": OrderHealingSerializer(order_healings(order=order), many=True).data,
            }
        )


class OrderCancelApi(_MarketplaceApi):
    class InputSerializer(StrictInputSerializer):
        reason = serializers.CharField(max_length=400, required=False, default="")

        class Meta:
            ref_name = "OrderCancelInput"

    @extend_schema(
        tags=[TAG],
        operation_id="orders_cancel",
        summary="Cancel an open order (CREDIT refunded exactly once)",
        request=InputSerializer,
        parameters=[
            OpenApiParameter(
                HEADER, IDEMPOTENCY_KEY_SCHEMA, OpenApiParameter.HEADER, required=False
            ),
        ],
        responses={
            200: _OrderEnvelope,
            **error_responses(400, 401, 403, 404, 413, 415),
            **idempotency_errors(),
        },
        examples=[
            OpenApiExample(
                "Cancel", value={"reason": "buyer withdrew the order"}, request_only=True
            ),
        ],
    )
    @idempotent()
    def post(self, request: Request, order_id: str) -> Response:
        data = body_input(self.InputSerializer, request)
        order = _order_or_404(order_id)
        services.order_cancel(
            order=order,
            actor=services.Actor.user(request.user),
            reason=data["reason"] or "cancelled by the marketplace",
        )
        return Response({"success": True, "order": MarketplaceOrderSerializer(order).data})
